package operator

import (
	"container/heap"
)

// ttlTracker remembers when each key was last seen and finds the keys whose TTL has run out.
// It keeps one heap entry per key: an entry that comes due for a key seen since is pushed
// back to the key's new expiry.
type ttlTracker[K comparable] struct {
	d    int64 // in the unit of the times given: ms
	last map[K]int64
	due  expiryHeap[K]
}

func newTTLTracker[K comparable](t TTL) *ttlTracker[K] {
	if !t.Enabled() {
		return nil
	}
	return &ttlTracker[K]{d: t.Duration().Milliseconds(), last: map[K]int64{}}
}

func (t *ttlTracker[K]) touch(k K, at int64) {
	if t == nil {
		return
	}
	prev, seen := t.last[k]
	if seen && prev >= at {
		return
	}
	t.last[k] = at
	if !seen {
		heap.Push(&t.due, expiry[K]{at: at + t.d, key: k})
	}
}

// expire calls drop for every key whose TTL has run out at now.
func (t *ttlTracker[K]) expire(now int64, drop func(K)) {
	if t == nil {
		return
	}
	for t.due.Len() > 0 && t.due[0].at <= now {
		e := heap.Pop(&t.due).(expiry[K])
		last, ok := t.last[e.key]
		if !ok {
			continue
		}
		if last+t.d <= now {
			delete(t.last, e.key)
			drop(e.key)
			continue
		}
		heap.Push(&t.due, expiry[K]{at: last + t.d, key: e.key})
	}
}

// next returns when the next key may expire.
func (t *ttlTracker[K]) next() (int64, bool) {
	if t == nil || t.due.Len() == 0 {
		return 0, false
	}
	return t.due[0].at, true
}

func (t *ttlTracker[K]) reset() {
	if t != nil {
		t.last = map[K]int64{}
		t.due = nil
	}
}
