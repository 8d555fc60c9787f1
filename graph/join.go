package graph

import (
	"fmt"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
)

// IntervalJoin joins records of a and b with the same key whose timestamps satisfy
// b.ts ∈ [a.ts+lower, a.ts+upper], emitting join(a, b) with the larger timestamp. State is
// cleaned up by the watermark; records at or below the watermark when they arrive are late
// and go to the side outputs stream.LateTag[A]() and stream.LateRightTag[B]().
func IntervalJoin[K comparable, A, B, O any](a Keyed[K, A], b Keyed[K, B], lower, upper time.Duration, join func(A, B) O, opts ...Option) Stream[O] {
	ns, _ := keyedStage2[K, A, B, O](a, b, "intervalJoin", opts)
	ns.snapshots = true
	nilFunc(ns.g, ns, "join function", join == nil)
	if lower > upper {
		ns.g.errorf("stage %q: interval [%v, %v] is empty", ns.name, lower, upper)
	}
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := newJoinTask[O](ic, ns)
		op, err := operator.NewIntervalJoinOperator(a.key, b.key, lower, upper,
			func(x A, y B) (O, error) { return join(x, y), nil }, t.out.add,
			func(r stream.Record[A]) { t.late(stream.LateTag[A]().Name(), r.Value, r.Time) },
			func(r stream.Record[B]) { t.late(stream.LateRightTag[B]().Name(), r.Value, r.Time) })
		if err != nil {
			return nil, err
		}
		t.process[0] = inputOf(t, op.ProcessA)
		t.process[1] = inputOf(t, op.ProcessB)
		t.advance = func(w int64) error { op.Advance(w); return nil }
		t.reset = op.Reset
		t.snapshot, t.restore = op.Snapshot, op.Restore
		t.inspect = func(key any) (any, bool) {
			k, ok := key.(K)
			if !ok {
				return nil, false
			}
			as, bs := op.Buffered(k)
			return [2]int{as, bs}, as+bs > 0
		}
		return t, nil
	}
	return Stream[O]{st: ns}
}

// WindowJoin co-groups a and b in event-time windows: when a key's window fires, join sees
// every record of each side in it (either may be empty) and emits any number of results,
// stamped with the window's end − 1. Lateness and the late side outputs are as for Window.
func WindowJoin[K comparable, A, B, O any](a Keyed[K, A], b Keyed[K, B], w stream.WindowAssigner, join func(key K, win stream.TimeWindow, as []A, bs []B, emit func(O)), opts ...Option) Stream[O] {
	ns, o := keyedStage2[K, A, B, O](a, b, "windowJoin", opts)
	nilFunc(ns.g, ns, "join function", join == nil)
	ns.keyDesc += ", " + w.String()
	key := func(e operator.Either[A, B]) K {
		if e.IsB {
			return b.key(e.B)
		}
		return a.key(e.A)
	}
	wopts := operator.WindowOptions{Lateness: o.lateness, Changelog: o.changelog, Trigger: o.trigger}
	agg := operator.CoGroupAgg[A, B]{}
	if _, err := operator.NewWindowOperator(key, w, agg, wopts, nil, nil); err != nil {
		ns.g.errorf("stage %q: %v", ns.name, err)
		return Stream[O]{st: ns}
	}
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := newJoinTask[O](ic, ns)
		var cur stream.Record[stream.WindowResult[K, operator.CoGroup[A, B]]]
		emit := func(v O) { t.out.add(stream.Record[O]{Value: v, Time: cur.Time}) }
		op, err := operator.NewWindowOperator(key, w, agg, wopts,
			func(r stream.Record[stream.WindowResult[K, operator.CoGroup[A, B]]]) {
				if r.Kind == stream.Retract {
					return // a co-group's results are not retractable one by one
				}
				cur = r
				res := r.Value
				join(res.Key, stream.TimeWindow{Start: res.Start, End: res.End}, res.Value.As, res.Value.Bs, emit)
			},
			func(r stream.Record[operator.Either[A, B]]) {
				if r.Value.IsB {
					t.late(stream.LateRightTag[B]().Name(), r.Value.B, r.Time)
				} else {
					t.late(stream.LateTag[A]().Name(), r.Value.A, r.Time)
				}
			})
		if err != nil {
			return nil, err
		}
		t.process[0] = inputOf(t, func(r stream.Record[A]) error {
			return op.Process(stream.Record[operator.Either[A, B]]{Value: operator.Either[A, B]{A: r.Value}, Time: r.Time, Kind: r.Kind})
		})
		t.process[1] = inputOf(t, func(r stream.Record[B]) error {
			return op.Process(stream.Record[operator.Either[A, B]]{Value: operator.Either[A, B]{B: r.Value, IsB: true}, Time: r.Time, Kind: r.Kind})
		})
		t.advance = func(w int64) error { op.Advance(w); return nil }
		t.reset = op.Reset
		t.inspect = func(k any) (any, bool) {
			kk, ok := k.(K)
			if !ok {
				return nil, false
			}
			m := op.Get(kk)
			return m, m != nil
		}
		t.snapshot = op.Snapshot
		t.restore = func(b []byte) error { return op.Restore(b, ic.env.Now().UnixMilli()) }
		return t, nil
	}
	ns.snapshots = true
	return Stream[O]{st: ns}
}

// JoinTable joins each record of s with the current value of its key in table, a table
// built from a changelog stream (latest value per key; a retraction deletes it), in arrival
// order, as Kafka Streams joins a KStream with a KTable. join sees found = false when the
// key has no value, and returns ok = false to emit nothing (an inner join).
func JoinTable[K comparable, T, V, O any](s Keyed[K, T], table Keyed[K, V], join func(t T, v V, found bool) (O, bool), opts ...Option) Stream[O] {
	ns, _ := keyedStage2[K, T, V, O](s, table, "tableJoin", opts)
	ns.snapshots = true
	nilFunc(ns.g, ns, "join function", join == nil)
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := newJoinTask[O](ic, ns)
		op := operator.NewTableJoinOperator(s.key, table.key, func(x T, v V, found bool) (O, bool, error) {
			o, ok := join(x, v, found)
			return o, ok, nil
		}, t.out.add)
		t.process[0] = inputOf(t, op.ProcessStream)
		t.process[1] = inputOf(t, func(r stream.Record[V]) error { op.ProcessTable(r); return nil })
		t.reset = op.Reset
		t.snapshot, t.restore = op.Snapshot, op.Restore
		t.inspect = func(k any) (any, bool) {
			kk, ok := k.(K)
			if !ok {
				return nil, false
			}
			return op.Get(kk)
		}
		return t, nil
	}
	return Stream[O]{st: ns}
}

// TemporalJoin joins each record of s with the version of its key's value in table as of
// the record's timestamp (Flink's event-time temporal join): records wait for the watermark
// to reach them, and table versions no record can need any more are dropped.
func TemporalJoin[K comparable, T, V, O any](s Keyed[K, T], table Keyed[K, V], join func(t T, v V, found bool) (O, bool), opts ...Option) Stream[O] {
	ns, _ := keyedStage2[K, T, V, O](s, table, "temporalJoin", opts)
	ns.snapshots = true
	nilFunc(ns.g, ns, "join function", join == nil)
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := newJoinTask[O](ic, ns)
		op := operator.NewTemporalJoinOperator(s.key, table.key, func(x T, v V, found bool) (O, bool, error) {
			o, ok := join(x, v, found)
			return o, ok, nil
		}, t.out.add)
		t.process[0] = inputOf(t, func(r stream.Record[T]) error { op.ProcessStream(r); return nil })
		t.process[1] = inputOf(t, func(r stream.Record[V]) error { op.ProcessTable(r); return nil })
		t.advance = op.Advance
		t.reset = op.Reset
		t.snapshot, t.restore = op.Snapshot, op.Restore
		return t, nil
	}
	return Stream[O]{st: ns}
}

// joinTask is the task of a two-input keyed stage: one typed handler per port, and the
// operator's watermark, reset and inspection hooks.
type joinTask[O any] struct {
	actor.NopTask
	env      *actor.Env
	name     string
	ic       *inst
	s        *stage
	out      *outBuffer[O]
	wm       func(int64)
	process  [2]func(records any, start, end int) int
	advance  func(w int64) error
	reset    func()
	inspect  func(key any) (any, bool)
	snapshot func() ([]byte, error)
	restore  func([]byte) error
}

func (t *joinTask[O]) Snapshot(int64) ([]byte, error) {
	if t.snapshot == nil {
		return nil, nil
	}
	return t.snapshot()
}

func (t *joinTask[O]) Restore(state []byte) error {
	if t.restore == nil {
		return fmt.Errorf("%s: this join keeps no snapshots", t.name)
	}
	return t.restore(state)
}

func newJoinTask[O any](ic *inst, s *stage) *joinTask[O] {
	return &joinTask[O]{env: ic.env, name: s.name, ic: ic, s: s, out: newOutBuffer(ic, pushOf[O](ic, s)), wm: wmOf(ic, s)}
}

// inputOf makes the handler of one port from a per-record function.
func inputOf[O, T any](t *joinTask[O], f func(stream.Record[T]) error) func(any, int, int) int {
	return func(records any, start, end int) int {
		return processRecords(t.env, t.name, records.([]stream.Record[T])[:end], start, f)
	}
}

// processRecords calls f for recs[start:] until the end or a blocked output, and returns
// where it stopped. A record for which f fails or panics goes to the dead-letter output, and
// the rest goes on.
func processRecords[T any](env *actor.Env, stage string, recs []stream.Record[T], start int, f func(stream.Record[T]) error) int {
	i := start
	for i < len(recs) && !env.Blocked() {
		i = processFrom(env, stage, recs, i, f)
	}
	return i
}

func processFrom[T any](env *actor.Env, stage string, recs []stream.Record[T], start int, f func(stream.Record[T]) error) (next int) {
	defer recoverRecord(env, stage, recs, &next)
	for next = start; next < len(recs) && !env.Blocked(); next++ {
		if err := f(recs[next]); err != nil {
			deadLetter(env, stage, err.Error(), recs, next)
		}
	}
	return next
}

func (t *joinTask[O]) late(tag string, v any, ts int64) {
	t.env.CountLate()
	t.ic.side(t.s, tag, v, ts)
}

func (t *joinTask[O]) Process(port int, records any, start, end int) int {
	return t.process[port](records, start, end)
}

// Watermark lets the operator fire and clean up, sends what it emitted, then passes w on.
func (t *joinTask[O]) Watermark(w int64) {
	if t.advance != nil {
		if err := t.advanceSafely(w); err != nil {
			t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: err.Error()})
		}
	}
	t.out.flush()
	t.ic.endBatch()
	t.wm(w)
}

func (t *joinTask[O]) advanceSafely(w int64) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p) // the instance stops while its work waits for credit
			}
			err = fmt.Errorf("panic at watermark %d: %v", w, p)
		}
	}()
	return t.advance(w)
}

func (t *joinTask[O]) EndBatch() {
	t.out.flush()
	t.ic.endBatch()
}

func (t *joinTask[O]) Reset() {
	if t.reset != nil {
		t.reset()
	}
}

func (t *joinTask[O]) Inspect(key any) (any, bool) {
	if t.inspect == nil {
		return nil, false
	}
	return t.inspect(key)
}
