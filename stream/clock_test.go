package stream

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

var clockStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestManualClockFiresInTimeOrder(t *testing.T) {
	c := NewManualClock(clockStart)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, fmt.Sprintf("%s@%s", name, c.Now().Sub(clockStart))) }
	}
	c.AfterFunc(30*time.Millisecond, at("c"))
	c.AfterFunc(10*time.Millisecond, at("a"))
	c.AfterFunc(20*time.Millisecond, at("b1"))
	c.AfterFunc(20*time.Millisecond, at("b2")) // same time: registration order
	c.AfterFunc(50*time.Millisecond, at("late"))

	c.Advance(5 * time.Millisecond)
	if len(got) != 0 {
		t.Fatalf("after 5ms: fired %v, want nothing", got)
	}
	c.Advance(25 * time.Millisecond)
	want := []string{"a@10ms", "b1@20ms", "b2@20ms", "c@30ms"}
	if !slices.Equal(got, want) {
		t.Fatalf("after 30ms: fired %v, want %v", got, want)
	}
	if now := c.Now(); !now.Equal(clockStart.Add(30 * time.Millisecond)) {
		t.Errorf("Now = %s, want start+30ms", now)
	}
	if p := c.Pending(); p != 1 {
		t.Errorf("Pending = %d, want 1", p)
	}
}

func TestManualClockStop(t *testing.T) {
	c := NewManualClock(clockStart)
	fired := map[string]bool{}
	stopA := c.AfterFunc(time.Second, func() { fired["a"] = true })
	stopB := c.AfterFunc(time.Second, func() { fired["b"] = true })
	c.AfterFunc(2*time.Second, func() { fired["c"] = true })
	if !stopA() {
		t.Error("first Stop of a pending callback = false, want true")
	}
	if stopA() {
		t.Error("second Stop = true, want false")
	}
	if p := c.Pending(); p != 2 {
		t.Errorf("Pending after Stop = %d, want 2", p)
	}
	c.Advance(3 * time.Second)
	if fired["a"] || !fired["b"] || !fired["c"] {
		t.Errorf("fired %v, want b and c only", fired)
	}
	if stopB() {
		t.Error("Stop after the callback ran = true, want false")
	}
}

func TestManualClockCallbacksScheduleCallbacks(t *testing.T) {
	c := NewManualClock(clockStart)
	var got []time.Duration
	record := func() { got = append(got, c.Now().Sub(clockStart)) }
	c.AfterFunc(10*time.Millisecond, func() {
		record()
		// Due inside this Advance: must fire in it, at its own due time.
		c.AfterFunc(5*time.Millisecond, func() {
			record()
			c.AfterFunc(0, record) // due at once: fires in this Advance, at 15ms
		})
		// Due after the end of this Advance: must wait.
		c.AfterFunc(time.Hour, record)
	})
	c.AfterFunc(20*time.Millisecond, record)
	c.Advance(30 * time.Millisecond)
	want := []time.Duration{10 * time.Millisecond, 15 * time.Millisecond, 15 * time.Millisecond, 20 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Fatalf("fired at %v, want %v", got, want)
	}
	if p := c.Pending(); p != 1 {
		t.Errorf("Pending = %d, want 1 (the one due in an hour)", p)
	}
	c.Advance(time.Hour)
	if len(got) != 5 || got[4] != 10*time.Millisecond+time.Hour {
		t.Errorf("fired at %v, want a fifth at 1h10ms", got)
	}
}

func TestManualClockSetNeverGoesBack(t *testing.T) {
	c := NewManualClock(clockStart)
	c.Set(clockStart.Add(-time.Hour))
	if !c.Now().Equal(clockStart) {
		t.Errorf("Now = %s after Set to the past, want %s", c.Now(), clockStart)
	}
	fired := false
	c.AfterFunc(-time.Second, func() { fired = true })
	c.Advance(0)
	if !fired {
		t.Error("a callback due at once did not fire at the next Advance")
	}
	if !c.Now().Equal(clockStart) {
		t.Errorf("Now = %s after a past-due callback, want %s", c.Now(), clockStart)
	}
}
