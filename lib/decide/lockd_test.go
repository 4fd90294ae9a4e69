package decide

import (
	"testing"
	"time"
)

func TestFenceEarly(t *testing.T) {
	const rt = 4 * time.Second
	for _, c := range []struct {
		name string
		g    Guard
		want bool
	}{
		{"renewed recently, nobody receiving", Guard{Unrenewed: 3 * time.Second, RetryTimeout: rt, StatusKnown: true}, false},
		{"unrenewed, nobody receiving", Guard{Unrenewed: rt, RetryTimeout: rt, StatusKnown: true}, true},
		{"unrenewed, a replica receiving", Guard{Unrenewed: 6 * time.Second, RetryTimeout: rt, StatusKnown: true, Receiving: 1}, false},
		{"unrenewed, server does not answer", Guard{Unrenewed: 5 * time.Second, RetryTimeout: rt}, true},
		{"renewed recently, server does not answer", Guard{Unrenewed: time.Second, RetryTimeout: rt}, false},
	} {
		if got := FenceEarly(c.g); got != c.want {
			t.Errorf("%s: FenceEarly(%+v) = %v, want %v", c.name, c.g, got, c.want)
		}
	}
}

func TestDecideOwnKey(t *testing.T) {
	for _, c := range []struct {
		k    OwnKey
		want OwnKeyAction
	}{
		{OwnKey{Adopted: true}, OwnKeyLead},
		{OwnKey{Adopted: true, Paused: true}, OwnKeyLead},
		{OwnKey{Paused: true}, OwnKeyHold},
		{OwnKey{}, OwnKeyStandby},
	} {
		if got := DecideOwnKey(c.k); got != c.want {
			t.Errorf("DecideOwnKey(%+v) = %s, want %s", c.k, got, c.want)
		}
	}
}

func TestOnShutdown(t *testing.T) {
	for _, c := range []struct {
		name string
		s    Shutdown
		want ShutdownAction
	}{
		{"leading", Shutdown{Token: 7}, HandOver},
		{"leading, etcd unreadable, server writable", Shutdown{Token: 7}, HandOver},
		{"adopted lease holds the key, token not yet known", Shutdown{KeyRead: true, KeyOnLease: true}, HandOver},
		{"key elsewhere", Shutdown{KeyRead: true}, RevokeLease},
		{"etcd unreadable, server writable", Shutdown{}, LeaveLease},
		{"etcd unreadable, server stopped", Shutdown{NotWritable: true}, RevokeLease},
	} {
		if got := OnShutdown(c.s); got != c.want {
			t.Errorf("%s: OnShutdown(%+v) = %s, want %s", c.name, c.s, got, c.want)
		}
	}
}
