package operator

import (
	"container/heap"
	"time"
)

// KeyedState is the per-key state of one key group. The user reaches it through state
// handles (Value, Map, List) declared once and read with the Context of the current key; the
// runtime keeps one KeyedState per key group.
type KeyedState[K comparable] struct {
	keys map[K]map[string]any
}

func (s *KeyedState[K]) slot(key K, name string) (any, bool) {
	v, ok := s.keys[key][name]
	return v, ok
}

func (s *KeyedState[K]) set(key K, name string, v any) {
	if s.keys == nil {
		s.keys = make(map[K]map[string]any)
	}
	m := s.keys[key]
	if m == nil {
		m = make(map[string]any, 1)
		s.keys[key] = m
	}
	m[name] = v
}

// clear removes one named state of key, and the key itself when it holds no more state, so
// that state of keys that are gone does not stay behind.
func (s *KeyedState[K]) clear(key K, name string) {
	m := s.keys[key]
	delete(m, name)
	if len(m) == 0 {
		delete(s.keys, key)
	}
}

// drop removes every named state of key.
func (s *KeyedState[K]) drop(key K) { delete(s.keys, key) }

// Get returns every named state of key (a copy of the map, not of the values), for tests
// and inspection.
func (s *KeyedState[K]) Get(key K) map[string]any {
	m := s.keys[key]
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Len returns how many keys hold state.
func (s *KeyedState[K]) Len() int { return len(s.keys) }

// Clear drops all state.
func (s *KeyedState[K]) Clear() { s.keys = nil }

// Timers is the processing-time timer queue of one key group: a min-heap of (time, key), with
// at most one timer per key and time (registering it twice is one timer, as in Flink).
type Timers[K comparable] struct {
	h   timerHeap[K]
	set map[timerID[K]]*timer[K]
	seq uint64
}

type timerID[K comparable] struct {
	at  int64
	key K
}

type timer[K comparable] struct {
	timerID[K]
	seq   uint64
	index int
}

// Register adds a timer for key at t (nanosecond precision).
func (ts *Timers[K]) Register(key K, at time.Time) { ts.RegisterAt(key, at.UnixNano()) }

// RegisterAt adds a timer for key at instant at, in the heap's own unit (event-time timers
// use Unix ms).
func (ts *Timers[K]) RegisterAt(key K, at int64) {
	id := timerID[K]{at: at, key: key}
	if _, ok := ts.set[id]; ok {
		return
	}
	if ts.set == nil {
		ts.set = make(map[timerID[K]]*timer[K])
	}
	ts.seq++
	t := &timer[K]{timerID: id, seq: ts.seq}
	ts.set[id] = t
	heap.Push(&ts.h, t)
}

// Delete removes the timer for key at t, if there is one.
func (ts *Timers[K]) Delete(key K, at time.Time) { ts.DeleteAt(key, at.UnixNano()) }

// DeleteAt removes the timer for key at instant at, if there is one.
func (ts *Timers[K]) DeleteAt(key K, at int64) {
	id := timerID[K]{at: at, key: key}
	t, ok := ts.set[id]
	if !ok {
		return
	}
	delete(ts.set, id)
	heap.Remove(&ts.h, t.index)
}

// Next returns the time of the earliest timer.
func (ts *Timers[K]) Next() (time.Time, bool) {
	if len(ts.h) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ts.h[0].at), true
}

// PopDue removes and returns the earliest timer at or before now.
func (ts *Timers[K]) PopDue(now time.Time) (key K, at time.Time, ok bool) {
	key, n, ok := ts.PopDueAt(now.UnixNano())
	if !ok {
		return key, at, false
	}
	return key, time.Unix(0, n), true
}

// PopDueAt removes and returns the earliest timer at or before instant now.
func (ts *Timers[K]) PopDueAt(now int64) (key K, at int64, ok bool) {
	if len(ts.h) == 0 || ts.h[0].at > now {
		return key, 0, false
	}
	t := heap.Pop(&ts.h).(*timer[K])
	delete(ts.set, t.timerID)
	return t.key, t.at, true
}

// Len returns how many timers wait.
func (ts *Timers[K]) Len() int { return len(ts.h) }

type timerHeap[K comparable] []*timer[K]

func (h timerHeap[K]) Len() int { return len(h) }
func (h timerHeap[K]) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap[K]) Push(x any) {
	t := x.(*timer[K])
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap[K]) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
