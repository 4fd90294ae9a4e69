package state

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

func TestRoundTripAndAtomicity(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadSupervise(dir); !errors.Is(err, ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			st := Running
			if i%2 == 1 {
				st = Fenced
			}
			if err := Write(dir, SuperviseFile, Supervise{State: st, Message: string(make([]byte, 4000)), Updated: clock.Now()}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	reads := 0
	for time.Now().Before(deadline) {
		s, err := ReadSupervise(dir)
		if errors.Is(err, ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("torn read: %v", err)
		}
		if s.State != Running && s.State != Fenced {
			t.Fatalf("state %q", s.State)
		}
		reads++
	}
	close(stop)
	wg.Wait()
	if reads == 0 {
		t.Fatal("no successful read")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := os.WriteFile(filepath.Join(dir, LockdFile), []byte("{bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLockd(dir); err == nil {
		t.Error("garbage state file accepted")
	}
}

func TestFresh(t *testing.T) {
	now := clock.Time(100 * time.Second)
	if !Fresh(now.Add(-time.Second), now, 2*time.Second) || Fresh(now.Add(-3*time.Second), now, 2*time.Second) || Fresh(0, now, time.Hour) {
		t.Error("Fresh")
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadConfig(dir, "s", "n1"); !IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
	c := Config{Scope: "s", Name: "n1", Revision: 7, Config: []byte(`{"ttl":8}`), Updated: clock.Now()}
	if err := Write(dir, ConfigFile, c); err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfig(dir, "s", "n1")
	if err != nil || got.Revision != 7 || string(got.Config) != `{"ttl":8}` {
		t.Fatalf("ReadConfig = %+v, %v", got, err)
	}
	if _, err := ReadConfig(dir, "s", "n2"); err == nil || IsNotExist(err) {
		t.Fatalf("another node's file: %v, want an error", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"scope":"s","name":"n1","config":[1]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConfig(dir, "s", "n1"); err == nil {
		t.Fatal("config that is not an object: no error")
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"scope":"s","na`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConfig(dir, "s", "n1"); err == nil || IsNotExist(err) {
		t.Fatalf("garbled file: %v, want an error", err)
	}
}
