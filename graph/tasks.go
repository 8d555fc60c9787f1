package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/stream"
)

// inst is the compile context of one vertex instance: its env, the push functions built so
// far (a stage reached twice in one chain, as after a diamond, is built once), its writers
// and the sink buffers to flush after each batch.
type inst struct {
	env      *actor.Env
	v        *vertexPlan
	pushes   map[int]any
	writers  map[edgeKey]any
	flushers []func()
	sides    map[int]map[string]func(any, int64) bool
}

func (ic *inst) writer(to *stage, port int, make func(*actor.OutputGroup) any) any {
	k := edgeKey{to: to.id, port: port}
	if w, ok := ic.writers[k]; ok {
		return w
	}
	w := make(ic.env.Output(ic.v.edgeIndex[k]))
	ic.writers[k] = w
	return w
}

// side routes a side-output value of stage s; a tag nobody takes, or a value of the wrong
// type, is a dead letter.
func (ic *inst) side(s *stage, tag string, v any, ts int64) {
	byTag := ic.sides[s.id]
	if byTag == nil {
		byTag = map[string]func(any, int64) bool{}
		ic.sides[s.id] = byTag
	}
	push, ok := byTag[tag]
	if !ok {
		if so := s.sides[tag]; so != nil {
			push = so.push(ic)
			byTag[tag] = push
		}
	}
	if push == nil {
		ic.env.DeadLetter(stream.DeadLetter{Stage: s.name, Reason: fmt.Sprintf("side output %q has no consumer (take it with graph.SideOutput)", tag), Value: v, Time: ts})
		return
	}
	if !push(v, ts) {
		ic.env.DeadLetter(stream.DeadLetter{Stage: s.name, Reason: fmt.Sprintf("side output %q: value of type %T does not fit the tag", tag, v), Value: v, Time: ts})
	}
}

func (ic *inst) endBatch() {
	for _, f := range ic.flushers {
		f()
	}
}

// pushOf returns the function that hands a record of stage s's output to all its
// consumers within the instance.
func pushOf[T any](ic *inst, s *stage) func(stream.Record[T]) {
	if f, ok := ic.pushes[s.id]; ok {
		return f.(func(stream.Record[T]))
	}
	cons := s.outputs.(*outputs[T]).consumers
	fs := make([]func(stream.Record[T]), len(cons))
	for i, c := range cons {
		fs[i] = c(ic)
	}
	var f func(stream.Record[T])
	switch len(fs) {
	case 0:
		f = func(stream.Record[T]) {}
	case 1:
		f = fs[0]
	case 2:
		a, b := fs[0], fs[1]
		f = func(r stream.Record[T]) { a(r); b(r) }
	default:
		f = func(r stream.Record[T]) {
			for _, g := range fs {
				g(r)
			}
		}
	}
	ic.pushes[s.id] = f
	return f
}

// sinkBuffer collects an instance's records for a sink and writes them a batch at a time.
type sinkBuffer[T any] struct {
	sink stream.Sink[T]
	env  *actor.Env
	name string
	buf  []stream.Record[T]
}

func (b *sinkBuffer[T]) add(r stream.Record[T]) {
	b.buf = append(b.buf, r)
	if len(b.buf) >= b.env.Config.BatchSize {
		b.flush()
	}
}

func (b *sinkBuffer[T]) flush() {
	if len(b.buf) == 0 {
		return
	}
	if err := b.sink.WriteBatch(b.buf); err != nil {
		for _, r := range b.buf {
			b.env.DeadLetter(stream.DeadLetter{Stage: b.name, Reason: fmt.Sprintf("write to sink: %v", err), Value: r.Value, Time: r.Time})
		}
	} else {
		b.env.Metrics.Out.Add(int64(len(b.buf)))
	}
	clear(b.buf)
	b.buf = b.buf[:0]
}

// sourceTask reads a split into the chain. It reads a chunk into buf, then drives buf
// through the chain, so that a panic in the chain costs one record, not the chunk, and a
// blocked output pauses mid-chunk.
type sourceTask[T any] struct {
	actor.NopTask
	env   *actor.Env
	name  string
	split stream.Split[T]
	ic    *inst
	push  func(stream.Record[T])
	buf   []stream.Record[T]
	pos   int
	eof   bool
}

func (t *sourceTask[T]) Emit(r stream.Record[T]) { t.buf = append(t.buf, r) }

func (t *sourceTask[T]) DeadLetter(d stream.DeadLetter) {
	if d.Stage == "" {
		d.Stage = t.name
	}
	t.env.DeadLetter(d)
}

func (t *sourceTask[T]) Read(ctx context.Context, max int) (int, error) {
	n := 0
	var err error
	if t.pos >= len(t.buf) && !t.eof {
		clear(t.buf)
		t.buf, t.pos = t.buf[:0], 0
		t.env.Stage = t.name
		n, err = t.split.Read(ctx, max, t)
		if errors.Is(err, io.EOF) {
			t.eof, err = true, nil
		}
	}
	t.pos = actor.Drive(t.env, t.buf, t.pos, t.push)
	if err != nil {
		return n, err
	}
	if t.eof && t.pos >= len(t.buf) {
		return n, io.EOF
	}
	return n, nil
}

func (t *sourceTask[T]) EndBatch()    { t.ic.endBatch() }
func (t *sourceTask[T]) Close() error { return t.split.Close() }

// aggregateTask runs an AggregateOperator in one key group.
type aggregateTask[K comparable, T, A, R any] struct {
	actor.NopTask
	env    *actor.Env
	name   string
	ic     *inst
	op     *stream.AggregateOperator[K, T, A, R]
	handle func(stream.Record[T])
}

func (t *aggregateTask[K, T, A, R]) process(r stream.Record[T]) {
	t.env.Stage = t.name
	if err := t.op.Process(r); err != nil {
		t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: err.Error(), Value: r.Value, Time: r.Time})
	}
}

func (t *aggregateTask[K, T, A, R]) Process(_ int, records any, start int) int {
	return actor.Drive(t.env, records.([]stream.Record[T]), start, t.handle)
}

func (t *aggregateTask[K, T, A, R]) EndBatch() {
	t.op.EndBatch()
	t.ic.endBatch()
}

func (t *aggregateTask[K, T, A, R]) EndInput() { t.op.EndInput() }
func (t *aggregateTask[K, T, A, R]) Reset()    { t.op.Reset() }

func (t *aggregateTask[K, T, A, R]) Inspect(key any) (any, bool) {
	k, ok := key.(K)
	if !ok {
		return nil, false
	}
	return t.op.Get(k)
}

// processTask runs a KeyedProcess in one key group.
type processTask[K comparable, T, O any] struct {
	actor.NopTask
	env    *actor.Env
	name   string
	ic     *inst
	op     *stream.ProcessOperator[K, T, O]
	handle func(stream.Record[T])
	now    time.Time
}

func (t *processTask[K, T, O]) process(r stream.Record[T]) {
	t.env.Stage = t.name
	if err := t.op.Process(r, t.now); err != nil {
		t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: err.Error(), Value: r.Value, Time: r.Time})
	}
}

func (t *processTask[K, T, O]) Process(_ int, records any, start int) int {
	t.now = t.env.Now()
	return actor.Drive(t.env, records.([]stream.Record[T]), start, t.handle)
}

func (t *processTask[K, T, O]) EndBatch()                    { t.ic.endBatch() }
func (t *processTask[K, T, O]) NextTimer() (time.Time, bool) { return t.op.NextTimer() }
func (t *processTask[K, T, O]) Reset()                       { t.op.Reset() }

// FireTimers fires every timer due at now, then writes what they emitted to the sinks fused
// after the stage: the runtime ends no batch after a timer tick, so nothing else would.
func (t *processTask[K, T, O]) FireTimers(now time.Time) {
	defer t.ic.endBatch()
	for {
		fired, err := t.fireOne(now)
		if !fired {
			return
		}
		if err != nil {
			t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: err.Error(), Value: fmt.Sprintf("timer due %s", now.Format(time.RFC3339Nano))})
		}
	}
}

// fireOne fires one due timer; a panic in OnTimer is that timer's error.
func (t *processTask[K, T, O]) fireOne(now time.Time) (fired bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			fired, err = true, fmt.Errorf("panic in OnTimer: %v", p)
		}
	}()
	t.env.Stage = t.name
	return t.op.FireTimer(now)
}

func (t *processTask[K, T, O]) Inspect(key any) (any, bool) {
	k, ok := key.(K)
	if !ok {
		return nil, false
	}
	m := t.op.State().Get(k)
	return m, m != nil
}
