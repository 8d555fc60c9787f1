package stream

import (
	"container/heap"
	"sync"
	"time"
)

// Clock tells processing time and schedules callbacks. The runtime uses the real clock; tests
// use a ManualClock so that timers fire when the test says, never after a sleep.
type Clock interface {
	// Now returns the current processing time.
	Now() time.Time
	// AfterFunc calls f once d has passed. On the real clock f runs on its own goroutine; on
	// a ManualClock it runs inside Advance. The returned Stop cancels a callback that has not
	// run yet and reports whether it did.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// ManualClock is a Clock that moves only when Advance or Set is called. Callbacks that come
// due run inside Advance, in time order, on the caller's goroutine. It is safe for concurrent
// use.
type ManualClock struct {
	// mu guards now, pending and seq.
	mu      sync.Mutex
	now     time.Time
	pending callbackHeap
	seq     uint64
}

// NewManualClock returns a manual clock that reads start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for Now()+d. A d ≤ 0 is due at once: it runs at the next Advance.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	cb := &callback{at: c.now.Add(d), seq: c.seq, f: f}
	heap.Push(&c.pending, cb)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if cb.index < 0 {
			return false
		}
		heap.Remove(&c.pending, cb.index)
		return true
	}
}

// Advance moves the clock forward by d, running every callback that comes due, each with the
// clock set to its due time. Callbacks scheduled by callbacks run too when they fall due.
func (c *ManualClock) Advance(d time.Duration) {
	c.Set(c.Now().Add(d))
}

// Set moves the clock to t (never backwards), running the callbacks that come due.
func (c *ManualClock) Set(t time.Time) {
	if now := c.Now(); t.Before(now) {
		t = now
	}
	for {
		c.mu.Lock()
		if len(c.pending) == 0 || c.pending[0].at.After(t) {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		cb := heap.Pop(&c.pending).(*callback)
		if cb.at.After(c.now) {
			c.now = cb.at
		}
		c.mu.Unlock()
		cb.f()
	}
}

// Next returns when the earliest waiting callback is due.
func (c *ManualClock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return time.Time{}, false
	}
	return c.pending[0].at, true
}

// Pending returns how many callbacks wait.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

type callback struct {
	at    time.Time
	seq   uint64
	f     func()
	index int
}

type callbackHeap []*callback

func (h callbackHeap) Len() int { return len(h) }
func (h callbackHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h callbackHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *callbackHeap) Push(x any) {
	cb := x.(*callback)
	cb.index = len(*h)
	*h = append(*h, cb)
}
func (h *callbackHeap) Pop() any {
	old := *h
	cb := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	cb.index = -1
	return cb
}
