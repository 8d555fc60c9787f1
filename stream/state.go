package stream

import "fmt"

// StateScope is the named state of the key being handled, as a keyed stage keeps it. The
// state handles (ValueState, MapState, ListState) read and write through it, and a Context
// is one; user code goes through the handles, which give each slot its type.
type StateScope interface {
	// StateSlot returns the current key's slot called name and whether it is set. A slot
	// restored from a checkpoint and not read since holds an EncodedState.
	StateSlot(name string) (any, bool)
	// SetStateSlot sets the current key's slot called name.
	SetStateSlot(name string, v any)
	// ClearStateSlot removes the current key's slot called name.
	ClearStateSlot(name string)
}

// EncodedState is a state value restored from a checkpoint and not yet read: the handle that
// first reads it decodes it (DecodeState) with its own type, since the checkpoint does not
// know the types of the values it holds.
type EncodedState []byte

// typedSlot returns the current key's state called name as a V, decoding it on its first
// read after a restore. A value that does not decode is a panic with a *StateError, which
// fails the job: state is never silently reset.
func typedSlot[V any](c StateScope, name string) (V, bool) {
	x, ok := c.StateSlot(name)
	if !ok {
		var zero V
		return zero, false
	}
	if raw, isRaw := x.(EncodedState); isRaw {
		v, err := DecodeState[V](raw)
		if err != nil {
			panic(&StateError{Op: fmt.Sprintf("decode state %q", name), Err: err})
		}
		c.SetStateSlot(name, v)
		return v, true
	}
	v, _ := x.(V) // a nil interface value comes back as V's zero value
	return v, true
}

// StateError is a failure of keyed state itself (a store that cannot be read or written, a
// restored value that does not decode), as opposed to a failure of a user function. It
// always fails the job, whatever the error policy: going on would go on from wrong state.
type StateError struct {
	// Op says what was being done.
	Op  string
	Err error
}

func (e *StateError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *StateError) Unwrap() error { return e.Err }

// ValueState is a single value of type T per key (Flink's ValueState).
type ValueState[T any] struct{ name string }

// NewValueState declares a per-key value state named name. Names are unique within a stage.
func NewValueState[T any](name string) ValueState[T] { return ValueState[T]{name: name} }

// Get returns the current key's value and whether it was set.
func (v ValueState[T]) Get(c StateScope) (T, bool) { return typedSlot[T](c, v.name) }

// Set sets the current key's value.
func (v ValueState[T]) Set(c StateScope, x T) { c.SetStateSlot(v.name, x) }

// Clear removes the current key's value.
func (v ValueState[T]) Clear(c StateScope) { c.ClearStateSlot(v.name) }

// MapState is a map from MK to MV per key (Flink's MapState).
type MapState[MK comparable, MV any] struct{ name string }

// NewMapState declares a per-key map state named name.
func NewMapState[MK comparable, MV any](name string) MapState[MK, MV] {
	return MapState[MK, MV]{name: name}
}

func (m MapState[MK, MV]) get(c StateScope) map[MK]MV {
	mm, _ := typedSlot[map[MK]MV](c, m.name)
	return mm
}

// Get returns the entry for k of the current key.
func (m MapState[MK, MV]) Get(c StateScope, k MK) (MV, bool) {
	v, ok := m.get(c)[k]
	return v, ok
}

// Put sets the entry for k of the current key.
func (m MapState[MK, MV]) Put(c StateScope, k MK, v MV) {
	mm := m.get(c)
	if mm == nil {
		mm = make(map[MK]MV)
		c.SetStateSlot(m.name, mm)
	}
	mm[k] = v
}

// Delete removes the entry for k of the current key.
func (m MapState[MK, MV]) Delete(c StateScope, k MK) {
	mm := m.get(c)
	delete(mm, k)
	if len(mm) == 0 {
		c.ClearStateSlot(m.name)
	}
}

// Len returns how many entries the current key's map has.
func (m MapState[MK, MV]) Len(c StateScope) int { return len(m.get(c)) }

// All calls f for every entry of the current key's map, in no fixed order, until f returns
// false.
func (m MapState[MK, MV]) All(c StateScope, f func(MK, MV) bool) {
	for k, v := range m.get(c) {
		if !f(k, v) {
			return
		}
	}
}

// Clear removes the current key's map.
func (m MapState[MK, MV]) Clear(c StateScope) { c.ClearStateSlot(m.name) }

// ListState is an ordered list of T per key (Flink's ListState).
type ListState[T any] struct{ name string }

// NewListState declares a per-key list state named name.
func NewListState[T any](name string) ListState[T] { return ListState[T]{name: name} }

// Append adds v at the end of the current key's list.
func (l ListState[T]) Append(c StateScope, v T) {
	s, _ := typedSlot[[]T](c, l.name)
	c.SetStateSlot(l.name, append(s, v))
}

// Items returns the current key's list. The caller must not keep it past the call.
func (l ListState[T]) Items(c StateScope) []T {
	s, _ := typedSlot[[]T](c, l.name)
	return s
}

// Clear removes the current key's list.
func (l ListState[T]) Clear(c StateScope) { c.ClearStateSlot(l.name) }
