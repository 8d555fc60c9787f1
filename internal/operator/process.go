package operator

import (
	"fmt"
	"time"
)

// Emitter is the engine's stream.Emitter: it hands results to the stage's output and side
// outputs, with the timestamp of the record or timer being handled.
type Emitter[T any] struct {
	push func(Record[T])
	side func(tag string, v any, ts int64)
	ts   int64
}

// NewEmitter returns an emitter that hands records to push and side-output values to side
// (nil: side outputs are an error). It is for runtimes and tests.
func NewEmitter[T any](push func(Record[T]), side func(tag string, v any, ts int64)) *Emitter[T] {
	return &Emitter[T]{push: push, side: side}
}

// SetTime sets the timestamp that results inherit.
func (e *Emitter[T]) SetTime(ts int64) { e.ts = ts }

// Emit sends v downstream as an insert.
func (e *Emitter[T]) Emit(v T) { e.push(Record[T]{Value: v, Time: e.ts}) }

// EmitAt sends v downstream as an insert with event timestamp ts.
func (e *Emitter[T]) EmitAt(v T, ts int64) { e.push(Record[T]{Value: v, Time: ts}) }

// Retract sends a retraction of v downstream.
func (e *Emitter[T]) Retract(v T) { e.push(Record[T]{Value: v, Time: e.ts, Kind: Retract}) }

// EmitSide sends v to the side output named tag.
func (e *Emitter[T]) EmitSide(tag string, v any) {
	if e.side == nil {
		panic(fmt.Sprintf("side output %q: this stage has no side outputs", tag))
	}
	e.side(tag, v, e.ts)
}

// processContext is the engine's stream.Context: the key, times, state and timers of what a
// ProcessOperator is handling.
type processContext[K comparable] struct {
	key         K
	kind        Kind
	ts          int64
	now         time.Time
	wm          int64
	state       *KeyedState[K]
	timers      *Timers[K]
	eventTimers *Timers[K]
}

// Key returns the key of the record or timer being handled.
func (c *processContext[K]) Key() K { return c.key }

// Timestamp returns the event timestamp (Unix ms) of the record being handled.
func (c *processContext[K]) Timestamp() int64 { return c.ts }

// Kind returns whether the record being handled is an insert or a retraction.
func (c *processContext[K]) Kind() Kind { return c.kind }

// Now returns the processing time.
func (c *processContext[K]) Now() time.Time { return c.now }

// RegisterTimer asks for OnTimer to be called for the current key at processing time at.
func (c *processContext[K]) RegisterTimer(at time.Time) { c.timers.Register(c.key, at) }

// DeleteTimer cancels the current key's timer at at.
func (c *processContext[K]) DeleteTimer(at time.Time) { c.timers.Delete(c.key, at) }

// Watermark returns the stage's current input watermark (Unix ms; MinWatermark before the
// first).
func (c *processContext[K]) Watermark() int64 { return c.wm }

// RegisterEventTimer asks for OnEventTimer to be called for the current key once the
// watermark reaches ts (Unix ms). A timer at or below the current watermark fires with the
// next watermark, or at the end of input.
func (c *processContext[K]) RegisterEventTimer(ts int64) { c.eventTimers.RegisterAt(c.key, ts) }

// DeleteEventTimer cancels the current key's event-time timer at ts.
func (c *processContext[K]) DeleteEventTimer(ts int64) { c.eventTimers.DeleteAt(c.key, ts) }

// StateSlot returns the current key's state called name.
func (c *processContext[K]) StateSlot(name string) (any, bool) { return c.state.slot(c.key, name) }

// SetStateSlot sets the current key's state called name.
func (c *processContext[K]) SetStateSlot(name string, v any) { c.state.set(c.key, name, v) }

// ClearStateSlot removes the current key's state called name.
func (c *processContext[K]) ClearStateSlot(name string) { c.state.clear(c.key, name) }

// ProcessOperator runs a KeyedProcess over the records of one key group. It is plain logic:
// the caller passes records and the time, and drains due timers.
type ProcessOperator[K comparable, I, O any] struct {
	key         func(I) K
	fn          KeyedProcess[K, I, O]
	state       KeyedState[K]
	timers      Timers[K]
	eventTimers Timers[K]
	ctx         processContext[K]
	out         *Emitter[O]
	ttl         TTL
	expiry      *ttlTracker[K]
}

// NewProcessOperator returns an operator that keys records with key and emits to out.
func NewProcessOperator[K comparable, I, O any](key func(I) K, fn KeyedProcess[K, I, O], out *Emitter[O]) *ProcessOperator[K, I, O] {
	op := &ProcessOperator[K, I, O]{key: key, fn: fn, out: out}
	op.ctx.state = &op.state
	op.ctx.timers = &op.timers
	op.ctx.eventTimers = &op.eventTimers
	op.ctx.wm = MinWatermark
	return op
}

// SetTTL makes the operator drop a key's state once ttl has passed since the key's last
// record.
func (op *ProcessOperator[K, I, O]) SetTTL(ttl TTL) error {
	if err := ttl.Validate(); err != nil {
		return err
	}
	op.ttl, op.expiry = ttl, newTTLTracker[K](ttl)
	return nil
}

// Expire drops the state of keys whose TTL has run out: at now for a processing-time TTL,
// at the watermark for an event-time one.
func (op *ProcessOperator[K, I, O]) Expire(now time.Time) {
	at := now.UnixMilli()
	if op.ttl.EventTime() {
		at = op.ctx.wm
	}
	op.expiry.expire(at, func(k K) { op.state.drop(k) })
}

// NextExpiry returns when the next key may expire (processing-time TTL only).
func (op *ProcessOperator[K, I, O]) NextExpiry() (time.Time, bool) {
	if op.ttl.EventTime() {
		return time.Time{}, false
	}
	at, ok := op.expiry.next()
	return time.UnixMilli(at), ok
}

// Process handles one record at processing time now.
func (op *ProcessOperator[K, I, O]) Process(r Record[I], now time.Time) error {
	op.ctx.key = op.key(r.Value)
	if op.ttl.EventTime() {
		op.expiry.touch(op.ctx.key, r.Time)
	} else {
		op.expiry.touch(op.ctx.key, now.UnixMilli())
	}
	op.ctx.ts = r.Time
	op.ctx.kind = r.Kind
	op.ctx.now = now
	op.out.ts = r.Time
	return op.fn.OnRecord(&op.ctx, r.Value, op.out)
}

// NextTimer returns the time of the earliest timer.
func (op *ProcessOperator[K, I, O]) NextTimer() (time.Time, bool) { return op.timers.Next() }

// FireTimer fires the earliest timer due at now, if any; it reports whether one fired.
// Firing one at a time lets the caller deal with each error on its own.
func (op *ProcessOperator[K, I, O]) FireTimer(now time.Time) (fired bool, err error) {
	key, at, ok := op.timers.PopDue(now)
	if !ok {
		return false, nil
	}
	if op.fn.OnTimer == nil {
		return true, fmt.Errorf("timer at %s for key %v: the process function has no OnTimer", at.Format(time.RFC3339Nano), key)
	}
	op.ctx.key = key
	op.ctx.kind = Insert
	op.ctx.ts = at.UnixMilli()
	op.ctx.now = now
	op.out.ts = op.ctx.ts
	return true, op.fn.OnTimer(&op.ctx, at, op.out)
}

// Advance moves the watermark to w (it never goes back).
func (op *ProcessOperator[K, I, O]) Advance(w int64) {
	if w > op.ctx.wm {
		op.ctx.wm = w
	}
}

// FireEventTimer fires the earliest event-time timer at or below the watermark, if any; it
// reports whether one fired.
func (op *ProcessOperator[K, I, O]) FireEventTimer(now time.Time) (fired bool, err error) {
	key, ts, ok := op.eventTimers.PopDueAt(op.ctx.wm)
	if !ok {
		return false, nil
	}
	if op.fn.OnEventTimer == nil {
		return true, fmt.Errorf("event-time timer at %d for key %v: the process function has no OnEventTimer", ts, key)
	}
	op.ctx.key = key
	op.ctx.kind = Insert
	op.ctx.ts = ts
	op.ctx.now = now
	op.out.ts = ts
	return true, op.fn.OnEventTimer(&op.ctx, ts, op.out)
}

// State returns the keyed state, for inspection and tests.
func (op *ProcessOperator[K, I, O]) State() *KeyedState[K] { return &op.state }

// Reset drops all state and timers (a stage restart without a checkpoint to restore).
func (op *ProcessOperator[K, I, O]) Reset() {
	op.state.Clear()
	op.timers = Timers[K]{}
	op.eventTimers = Timers[K]{}
	op.expiry.reset()
}
