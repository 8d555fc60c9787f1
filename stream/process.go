package stream

import "time"

// Emitter sends a stage's results downstream (Flink's Collector). A result inherits the
// event timestamp of the record (or timer) being handled unless EmitAt gives another.
type Emitter[T any] interface {
	// Emit sends v downstream as an insert.
	Emit(v T)
	// EmitAt sends v downstream as an insert with event timestamp ts (Unix ms).
	EmitAt(v T, ts int64)
	// Retract sends a retraction of v downstream.
	Retract(v T)
	// EmitSide sends v to the stage's side output named tag; Tag.Emit is the typed way to
	// call it. A stage without that side output panics, which its error policy handles.
	EmitSide(tag string, v any)
}

// sideEmitter is what a Tag needs of an emitter.
type sideEmitter interface{ EmitSide(tag string, v any) }

// Tag names a side output of element type E: a second, typed output of a process function,
// for records that do not belong in the main output (Flink's OutputTag).
type Tag[E any] struct{ name string }

// NewTag declares a side output named name.
func NewTag[E any](name string) Tag[E] { return Tag[E]{name: name} }

// Name returns the tag's name.
func (t Tag[E]) Name() string { return t.name }

// Emit sends v to the side output t of the stage that owns out.
func (t Tag[E]) Emit(out sideEmitter, v E) { out.EmitSide(t.name, v) }

// LateTag is the side output of a window or join stage that carries records too late for
// all their windows (of a join: the first input's).
func LateTag[T any]() Tag[T] { return NewTag[T]("late") }

// LateRightTag is the side output of a join stage that carries the second input's late
// records.
func LateRightTag[T any]() Tag[T] { return NewTag[T]("late-right") }

// Context is what a keyed process function sees while it handles one record or timer: the
// current key, the record's timestamp, processing time, per-key state (through the state
// handles, for which a Context is the StateScope) and timers.
type Context[K comparable] interface {
	StateScope
	// Key returns the key of the record or timer being handled.
	Key() K
	// Timestamp returns the event timestamp (Unix ms) of the record being handled.
	Timestamp() int64
	// Kind returns whether the record being handled is an insert or a retraction (of an
	// earlier insert: a changelog's delete, a re-org's orphaned record, a window's replaced
	// result). Timers are inserts.
	Kind() Kind
	// Now returns the processing time.
	Now() time.Time
	// Watermark returns the stage's current input watermark (Unix ms; MinWatermark before
	// the first).
	Watermark() int64
	// RegisterTimer asks for OnTimer to be called for the current key at processing time
	// at. Registering the same time twice is one timer.
	RegisterTimer(at time.Time)
	// DeleteTimer cancels the current key's timer at at.
	DeleteTimer(at time.Time)
	// RegisterEventTimer asks for OnEventTimer to be called for the current key once the
	// watermark reaches ts (Unix ms). A timer at or below the current watermark fires with
	// the next watermark, or at the end of input.
	RegisterEventTimer(ts int64)
	// DeleteEventTimer cancels the current key's event-time timer at ts.
	DeleteEventTimer(ts int64)
}

// KeyedProcess is a keyed process function: the most general keyed stage, with per-key state
// and timers (Flink's KeyedProcessFunction). OnRecord is required; OnTimer is called for due
// processing-time timers and OnEventTimer for event-time timers the watermark has passed;
// each may be nil when the function registers no such timer.
type KeyedProcess[K comparable, I, O any] struct {
	OnRecord     func(ctx Context[K], in I, out Emitter[O]) error
	OnTimer      func(ctx Context[K], at time.Time, out Emitter[O]) error
	OnEventTimer func(ctx Context[K], ts int64, out Emitter[O]) error
}
