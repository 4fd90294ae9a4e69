package clock

import (
	"testing"
	"time"
)

func TestNowAdvancesWithRealTime(t *testing.T) {
	a := Now()
	time.Sleep(20 * time.Millisecond)
	b := Now()
	if d := b.Sub(a); d < 20*time.Millisecond || d > 2*time.Second {
		t.Fatalf("CLOCK_BOOTTIME advanced %v over a 20ms sleep", d)
	}
}

func TestFake(t *testing.T) {
	f := NewFake(100)
	f.Advance(time.Second)
	if got := f.Now(); got != Time(100+time.Second) {
		t.Fatalf("Now = %d", got)
	}
	if !Time(1).Before(2) || Time(5).Add(time.Nanosecond) != 6 {
		t.Fatal("arithmetic")
	}
}
