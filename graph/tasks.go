package graph

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// inst is the compile context of one vertex instance: its env, the push functions built so
// far (a stage reached twice in one chain, as after a diamond, is built once), its writers
// and the buffers to flush when a batch ends.
//
// Chains run a batch at a time: each stage takes a slice of records, runs its function over
// all of them in one loop, and hands one slice on. A stage's user function is the only
// indirect call per record, and a sink receives the slice itself.
type inst struct {
	env      *actor.Env
	v        *vertexPlan
	pushes   map[int]any
	wms      map[int]func(int64)
	writers  map[edgeKey]any
	flushers []func()
	sides    map[int]map[string]sideBuffer
	// preCommits and commits are the two-phase sinks fused into the instance.
	preCommits []func(id int64) error
	commits    []func(id int64) error
	// pace, in micro-batch mode, paces the instance if it reads a source split.
	pace *microBatches
}

// twoPhaseTask wraps the task of an instance that feeds two-phase sinks: a checkpoint
// barrier pre-commits their transactions, a complete checkpoint commits them.
type twoPhaseTask struct {
	actor.Task
	ic *inst
}

func (t twoPhaseTask) Snapshot(id int64) ([]byte, error) {
	if id > 0 { // 0: the state an instance finished with, no barrier
		for _, pc := range t.ic.preCommits {
			if err := pc(id); err != nil {
				return nil, fmt.Errorf("pre-commit checkpoint %d: %w", id, err)
			}
		}
	}
	return t.Task.Snapshot(id)
}

func (t twoPhaseTask) CheckpointComplete(id int64) {
	for _, c := range t.ic.commits {
		if err := c(id); err != nil {
			t.ic.env.Config.Logger.Warn("commit checkpoint", "id", id, "instance", t.ic.env.ID.String(), "err", err)
		}
	}
	t.Task.CheckpointComplete(id)
}

func (t twoPhaseTask) Inspect(key any) (any, bool) {
	if in, ok := t.Task.(actor.Inspector); ok {
		return in.Inspect(key)
	}
	return nil, false
}

func newInst(env *actor.Env, vp *vertexPlan) *inst {
	return &inst{env: env, v: vp, pushes: map[int]any{}, wms: map[int]func(int64){}, writers: map[edgeKey]any{}, sides: map[int]map[string]sideBuffer{}}
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
		byTag = map[string]sideBuffer{}
		ic.sides[s.id] = byTag
	}
	buf, ok := byTag[tag]
	if !ok {
		if so := s.sides[tag]; so != nil {
			buf = so.push(ic)
			byTag[tag] = buf
			ic.flushers = append(ic.flushers, buf.flush)
		}
	}
	if buf.add == nil {
		ic.env.DeadLetter(stream.DeadLetter{Stage: s.name, Reason: fmt.Sprintf("side output %q has no consumer (take it with graph.SideOutput)", tag), Value: v, Time: ts})
		return
	}
	if !buf.add(v, ts) {
		ic.env.DeadLetter(stream.DeadLetter{Stage: s.name, Reason: fmt.Sprintf("side output %q: value of type %T does not fit the tag", tag, v), Value: v, Time: ts})
	}
}

func (ic *inst) endBatch() {
	for _, f := range ic.flushers {
		f()
	}
}

// pushOf returns the function that hands a batch of stage s's output to all its consumers
// within the instance.
func pushOf[T any](ic *inst, s *stage) push[T] {
	if f, ok := ic.pushes[s.id]; ok {
		return f.(push[T])
	}
	cons := s.outputs.(*outputs[T]).consumers
	fs := make([]push[T], len(cons))
	for i, c := range cons {
		fs[i] = c(ic)
	}
	var f push[T]
	switch len(fs) {
	case 0:
		f = func([]stream.Record[T]) {}
	case 1:
		f = fs[0]
	default:
		f = func(in []stream.Record[T]) {
			for _, g := range fs {
				g(in)
			}
		}
	}
	ic.pushes[s.id] = f
	return f
}

// transform is the push of a stage that makes at most one record of each: from runs over
// in[start:] into out until the end or a panic, and the records go on as one slice.
func transform[T, O any](ic *inst, s *stage, from func(in []stream.Record[T], start int, out []stream.Record[O]) ([]stream.Record[O], int)) push[T] {
	next := pushOf[O](ic, s)
	var out []stream.Record[O]
	return func(in []stream.Record[T]) {
		out = out[:0]
		for i := 0; i < len(in); {
			out, i = from(in, i, out)
		}
		if len(out) > 0 {
			next(out)
		}
		clear(out)
	}
}

// plainMapper is the push of a Map.
func plainMapper[T, O any](ic *inst, s *stage, f func(T) O) push[T] {
	return transform(ic, s, func(in []stream.Record[T], start int, out []stream.Record[O]) ([]stream.Record[O], int) {
		return plainMapFrom(ic.env, s.name, in, start, out, f)
	})
}

func plainMapFrom[T, O any](env *actor.Env, stage string, in []stream.Record[T], start int, buf []stream.Record[O], f func(T) O) (out []stream.Record[O], next int) {
	out = buf
	defer recoverRecord(env, stage, in, &next)
	for next = start; next < len(in); next++ {
		r := &in[next]
		out = append(out, stream.Record[O]{Value: f(r.Value), Time: r.Time, Kind: r.Kind})
	}
	return out, next
}

// wmOf returns the function that hands a watermark of stage s to all its consumers within
// the instance, in step with pushOf's records.
func wmOf(ic *inst, s *stage) func(int64) {
	if f, ok := ic.wms[s.id]; ok {
		return f
	}
	fs := make([]func(int64), len(s.wms))
	for i, c := range s.wms {
		fs[i] = c(ic)
	}
	f := func(w int64) {
		for _, g := range fs {
			g(w)
		}
	}
	ic.wms[s.id] = f
	return f
}

// mapper is the push of a TryMap.
func mapper[T, O any](ic *inst, s *stage, f func(T) (O, error)) push[T] {
	return transform(ic, s, func(in []stream.Record[T], start int, out []stream.Record[O]) ([]stream.Record[O], int) {
		return mapFrom(ic.env, s.name, in, start, out, f)
	})
}

// mapFrom maps in[start:] into out until the end or a failure. A record whose f returns an
// error or panics goes to the dead-letter output; the caller goes on after it.
// out is a named result so that what was mapped before a panic survives it.
func mapFrom[T, O any](env *actor.Env, stage string, in []stream.Record[T], start int, buf []stream.Record[O], f func(T) (O, error)) (out []stream.Record[O], next int) {
	out = buf
	defer recoverRecord(env, stage, in, &next)
	for next = start; next < len(in); next++ {
		r := &in[next]
		v, err := f(r.Value)
		if err != nil {
			deadLetter(env, stage, err.Error(), in, next)
			continue
		}
		out = append(out, stream.Record[O]{Value: v, Time: r.Time, Kind: r.Kind})
	}
	return out, next
}

func filterFrom[T any](env *actor.Env, stage string, in []stream.Record[T], start int, buf []stream.Record[T], keep func(T) bool) (out []stream.Record[T], next int) {
	out = buf
	defer recoverRecord(env, stage, in, &next)
	for next = start; next < len(in); next++ {
		if keep(in[next].Value) {
			out = append(out, in[next])
		}
	}
	return out, next
}

// recoverRecord, deferred by a loop over in, turns a panic while handling in[*next] into that
// record's dead letter and moves past it; the loop's caller then goes on from *next. A
// failure of the state store, or of keyed state that does not decode (a *stream.StateError),
// is no dead letter: it fails the job.
func recoverRecord[T any](env *actor.Env, stage string, in []stream.Record[T], next *int) {
	if p := recover(); p != nil {
		if actor.Unwinding(p) {
			panic(p) // the instance stops while its work waits for credit
		}
		if sf, ok := p.(stateStoreFailure); ok {
			env.Fail(fmt.Errorf("stage %q: %w", stage, sf.err))
		} else if se, ok := p.(*stream.StateError); ok {
			env.Fail(fmt.Errorf("stage %q: %w", stage, se))
		} else {
			deadLetter(env, stage, fmt.Sprintf("panic: %v", p), in, *next)
		}
		*next++
	}
}

// stateStoreFailure is the panic of a stateStore whose read or write failed: it unwinds the
// operator (whose AccStore calls cannot fail otherwise) to the task, which fails the job
// with err. Only the engine's store panics so; a user function's panic stays a dead letter.
type stateStoreFailure struct{ err error }

// stateStore is a key group's state in Badger as an aggregate operator's AccStore.
type stateStore struct{ kv *persistence.KeyedValues }

func (s stateStore) GetBatch(keys [][]byte, found func(i int, value []byte) error) error {
	var foundErr error
	err := s.kv.GetBatch(keys, func(i int, v []byte) error {
		foundErr = found(i, v)
		return foundErr
	})
	if err != nil && foundErr == nil {
		panic(stateStoreFailure{fmt.Errorf("read %d keys from the state store: %w", len(keys), err)})
	}
	return foundErr // a value that does not decode
}

func (s stateStore) PutBatch(keys, values [][]byte) error {
	if err := s.kv.PutBatch(keys, values); err != nil {
		panic(stateStoreFailure{fmt.Errorf("write %d keys back to the state store: %w", len(keys), err)})
	}
	return nil
}

// failOnStoreFailure, deferred by a task's call that may write back to the state store,
// fails the job when the store failed while doing what says; other panics go on.
func failOnStoreFailure(env *actor.Env, stage, doing string) {
	if p := recover(); p != nil {
		sf, ok := p.(stateStoreFailure)
		if !ok {
			panic(p)
		}
		env.Fail(fmt.Errorf("stage %q: %s: %w", stage, doing, sf.err))
	}
}

// deadLetter sends in[i] to the dead-letter output, with its source position when the
// source fused before the stage knows it.
func deadLetter[T any](env *actor.Env, stage, reason string, in []stream.Record[T], i int) {
	d := stream.DeadLetter{Stage: stage, Reason: reason, Value: in[i].Value, Time: in[i].Time}
	if env.Position != nil {
		if src, pos, ok := env.Position(in, i); ok {
			d.Source, d.Position = src, pos
		}
	}
	env.DeadLetter(d)
}

type flatMapper[T, O any] struct {
	env  *actor.Env
	name string
	f    func(T, func(O))
	emit func(O)
	cur  stream.Record[T]
	out  []stream.Record[O]
}

func (fm *flatMapper[T, O]) from(in []stream.Record[T], start int) (next int) {
	defer recoverRecord(fm.env, fm.name, in, &next)
	for next = start; next < len(in); next++ {
		fm.cur = in[next]
		fm.f(fm.cur.Value, fm.emit)
	}
	return next
}

type partitioner[T any] struct {
	env   *actor.Env
	name  string
	pick  func(T) int
	parts [][]stream.Record[T]
}

func (p *partitioner[T]) from(in []stream.Record[T], start int) (next int) {
	defer recoverRecord(p.env, p.name, in, &next)
	for next = start; next < len(in); next++ {
		i := p.pick(in[next].Value)
		if i < 0 || i >= len(p.parts) {
			deadLetter(p.env, p.name, fmt.Sprintf("partition index %d out of [0, %d)", i, len(p.parts)), in, next)
			continue
		}
		p.parts[i] = append(p.parts[i], in[next])
	}
	return next
}

// outBuffer collects what a keyed operator emits, record by record, and hands it on a batch
// at a time: when it holds a batch, and when the input batch ends.
type outBuffer[T any] struct {
	next  push[T]
	size  int
	recs  []stream.Record[T]
	flush func()
}

func newOutBuffer[T any](ic *inst, next push[T]) *outBuffer[T] {
	b := &outBuffer[T]{next: next, size: ic.env.Config.BatchSize}
	b.flush = func() {
		if len(b.recs) == 0 {
			return
		}
		b.next(b.recs)
		clear(b.recs)
		b.recs = b.recs[:0]
	}
	return b
}

func (b *outBuffer[T]) add(r stream.Record[T]) {
	b.recs = append(b.recs, r)
	if len(b.recs) >= b.size {
		b.flush()
	}
}

// sourceTask reads a split into the chain a chunk at a time. Records a split emits are
// appended to buf, which then goes down the chain as one batch.
type sourceTask[T any] struct {
	actor.NopTask
	env      *actor.Env
	name     string
	split    stream.Split[T]
	appender appender[T]
	ic       *inst
	push     push[T]
	wm       func(int64)
	buf      []stream.Record[T]
	emitted  int64
	// pace, in micro-batch mode, says how much the split may read.
	pace *microBatches
	// positioned is the split, when it knows where each record came from; pos holds the
	// position of each record of buf, and srcName what they count in.
	positioned stream.Positioned
	pos        []int64
	srcName    string
}

func (t *sourceTask[T]) Emit(r stream.Record[T]) {
	t.buf = append(t.buf, r)
	if t.positioned != nil {
		src, pos := t.positioned.Position()
		t.srcName = src
		t.pos = append(t.pos, pos)
	}
}

// position implements actor.Env.Position: where record i of records came from, when
// records is the batch the split has just read (the stages fused after the source get it
// as it is).
func (t *sourceTask[T]) position(records any, i int) (string, int64, bool) {
	recs, ok := records.([]stream.Record[T])
	if !ok || len(recs) == 0 || len(recs) != len(t.pos) || len(t.buf) == 0 || &recs[0] != &t.buf[0] || i >= len(t.pos) {
		return "", 0, false
	}
	return t.srcName, t.pos[i], true
}

// Watermark sends what was read before the watermark down the chain, then the watermark.
func (t *sourceTask[T]) Watermark(w int64) {
	if len(t.buf) > 0 {
		t.emitted += int64(len(t.buf))
		t.push(t.buf)
		clear(t.buf)
		t.buf, t.pos = t.buf[:0], t.pos[:0]
	}
	t.wm(w)
}

func (t *sourceTask[T]) DeadLetter(d stream.DeadLetter) {
	if d.Stage == "" {
		d.Stage = t.name
	}
	t.env.DeadLetter(d)
}

func (t *sourceTask[T]) Read(ctx context.Context, max int) (n int, err error) {
	t.buf, t.pos = t.buf[:0], t.pos[:0]
	if t.pace != nil {
		left := t.pace.allowance(ctx, t.env.ID)
		if left == 0 {
			return 0, nil
		}
		max = int(min(int64(max), left))
		defer func() { t.pace.took(t.env.ID, n, err) }()
	}
	n, err = t.read(ctx, max)
	if len(t.buf) > 0 {
		t.emitted += int64(len(t.buf))
		t.push(t.buf)
		clear(t.buf)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, actor.ErrWait) {
		err = fmt.Errorf("source %q: %w", t.name, err)
	}
	return n, err
}

// read calls the split; a panic in it (a generator's function) is reported as a dead letter
// and the split goes on, since what it emitted before the panic is in buf.
func (t *sourceTask[T]) read(ctx context.Context, max int) (n int, err error) {
	if t.appender != nil {
		t.buf, err = t.appender.Append(ctx, t.buf, max)
		if pe, ok := errors.AsType[*stream.PanicError](err); ok {
			t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: fmt.Sprintf("panic while reading: %v", pe.Value), Position: pe.Position})
			err = nil
		}
		return len(t.buf), err
	}
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p) // the instance stops while its work waits for credit
			}
			t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: fmt.Sprintf("panic while reading: %v", p)})
			n, err = len(t.buf), nil
		}
	}()
	return t.split.Read(ctx, max, t)
}

// sourceSnapshot is a source split's part of a checkpoint: how many records it has handed
// on, and where to rewind to when the split can (replayable).
type sourceSnapshot struct {
	Emitted int64  `json:"emitted"`
	Offset  []byte `json:"offset,omitempty"`
}

// Snapshot records the split's position at a checkpoint barrier.
func (t *sourceTask[T]) Snapshot(int64) ([]byte, error) {
	s := sourceSnapshot{Emitted: t.emitted}
	if r, ok := t.split.(replayable); ok {
		off, err := r.Offset()
		if err != nil {
			return nil, fmt.Errorf("offset of source split %s: %w", t.env.ID, err)
		}
		s.Offset = off
	}
	return snapshotJSON(s)
}

// Restore rewinds the split to a checkpoint's position.
func (t *sourceTask[T]) Restore(state []byte) error {
	var s sourceSnapshot
	if err := decodeSnapshot(state, &s); err != nil {
		return err
	}
	t.emitted = s.Emitted
	if len(s.Offset) == 0 {
		if s.Emitted > 0 {
			return fmt.Errorf("source split %s cannot rewind (its checkpoint has no offset)", t.env.ID)
		}
		return nil
	}
	r, ok := t.split.(replayable)
	if !ok {
		return fmt.Errorf("source split %s cannot rewind: it is not replayable", t.env.ID)
	}
	return r.Seek(s.Offset)
}

func (t *sourceTask[T]) EndBatch()    { t.ic.endBatch() }
func (t *sourceTask[T]) Close() error { return t.split.Close() }

// aggregateTask runs an AggregateOperator in one key group.
type aggregateTask[K comparable, T, A, R any] struct {
	actor.NopTask
	env  *actor.Env
	name string
	ic   *inst
	op   *operator.AggregateOperator[K, T, A, R]
	out  *outBuffer[stream.KV[K, R]]
	wm   func(int64)
	ttl  stream.TTL
	// keys writes keys in snapshots and in store, the key group's state in Badger (nil:
	// memory).
	keys  stream.Codec[K]
	store *persistence.KeyedValues
	// key is the stage's key function, and prefetchKeys the keys of a batch being
	// prefetched from store.
	key          func(T) K
	prefetchKeys []K
	// deltas, with a state backend and checkpoints, is what the key group wrote back since
	// the last complete checkpoint: its snapshots are incremental.
	deltas *deltaLog
	// runs, with a state backend and checkpoints, is what the key group streamed to the
	// checkpoint store's snapshot objects (snapshot_streams.go).
	runs *runLog
}

// CheckpointComplete lets later incremental snapshots build on checkpoint id.
func (t *aggregateTask[K, T, A, R]) CheckpointComplete(id int64) {
	if t.deltas != nil {
		t.deltas.complete(id)
	}
	if t.runs != nil {
		t.runs.complete(id)
	}
}

// Watermark passes w on after what the stage emitted before it, and lets an event-time TTL
// expire keys.
func (t *aggregateTask[K, T, A, R]) Watermark(w int64) {
	t.op.Advance(w)
	t.out.flush()
	t.wm(w)
}

// NextTimer is when a key may next expire under a processing-time TTL.
func (t *aggregateTask[K, T, A, R]) NextTimer() (time.Time, bool) {
	at, ok := t.op.NextExpiry()
	return time.UnixMilli(at), ok
}

// FireTimers expires the keys whose processing-time TTL has run out.
func (t *aggregateTask[K, T, A, R]) FireTimers(now time.Time) { t.op.Expire(now.UnixMilli()) }

func (t *aggregateTask[K, T, A, R]) Process(_ int, records any, start, end int) int {
	if t.ttl.Enabled() && !t.ttl.EventTime() {
		t.op.SetProcessingTime(t.env.Now().UnixMilli())
	}
	if parts, ok := records.([]stream.Record[partial[K, T, A]]); ok { // local aggregation
		parts = parts[:end]
		if t.store != nil && !t.prefetchPartials(parts[start:]) {
			return len(parts) // the job fails: the state store failed
		}
		i := start
		for i < len(parts) && !t.env.Blocked() {
			i = t.mergeFrom(parts, i)
		}
		return i
	}
	recs := records.([]stream.Record[T])[:end]
	if t.store != nil && !t.prefetch(recs[start:]) {
		return len(recs) // the job fails: the state store failed
	}
	i := start
	for i < len(recs) && !t.env.Blocked() {
		i = t.from(recs, i)
	}
	return i
}

// prefetch reads the accumulators of recs' keys that are not in memory from the state
// store in one read, so that folding them in costs no read per record. A failing store
// fails the job (it returns false); a key function that panics is left to Process, which
// makes its record a dead letter.
func (t *aggregateTask[K, T, A, R]) prefetch(recs []stream.Record[T]) (ok bool) {
	keys := t.prefetchKeys[:0]
	for _, r := range recs {
		if k, ok := t.keyOf(r.Value); ok {
			keys = append(keys, k)
		}
	}
	return t.prefetchKeysOf(keys)
}

// prefetchPartials reads the state of the keys of parts (local aggregation's partial
// results, and records sent raw) in one go, as prefetch does for records.
func (t *aggregateTask[K, T, A, R]) prefetchPartials(parts []stream.Record[partial[K, T, A]]) (ok bool) {
	keys := t.prefetchKeys[:0]
	for _, r := range parts {
		if !r.Value.Raw {
			keys = append(keys, r.Value.Key)
		} else if k, ok := t.keyOf(r.Value.Value); ok {
			keys = append(keys, k)
		}
	}
	return t.prefetchKeysOf(keys)
}

// prefetchKeysOf has the operator read keys' state; false when the state store failed (the
// job fails).
func (t *aggregateTask[K, T, A, R]) prefetchKeysOf(keys []K) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p)
			}
			if sf, isStore := p.(stateStoreFailure); isStore {
				t.env.Fail(fmt.Errorf("stage %q: %w", t.name, sf.err))
			} else if se, isState := p.(*stream.StateError); isState {
				t.env.Fail(fmt.Errorf("stage %q: %w", t.name, se))
			} else {
				panic(p)
			}
			ok = false
		}
	}()
	t.op.Prefetch(keys)
	clear(keys)
	t.prefetchKeys = keys[:0]
	return true
}

// keyOf returns v's key, or false when the key function panics.
func (t *aggregateTask[K, T, A, R]) keyOf(v T) (k K, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p)
			}
			ok = false
		}
	}()
	return t.key(v), true
}

// from folds recs[start:] in until the end, a blocked output or a panic, which costs the
// record that caused it a dead letter. It is processFrom with the operator called directly:
// this loop is the receiving side of every keyed count.
func (t *aggregateTask[K, T, A, R]) from(recs []stream.Record[T], start int) (next int) {
	defer recoverRecord(t.env, t.name, recs, &next)
	for next = start; next < len(recs) && !t.env.Blocked(); next++ {
		if err := t.op.Process(recs[next]); err != nil {
			deadLetter(t.env, t.name, err.Error(), recs, next)
		}
	}
	return next
}

func (t *aggregateTask[K, T, A, R]) EndBatch() {
	t.endBatch()
	t.out.flush()
	t.ic.endBatch()
}

func (t *aggregateTask[K, T, A, R]) endBatch() {
	defer failOnStoreFailure(t.env, t.name, "end a batch")
	t.op.EndBatch()
}

func (t *aggregateTask[K, T, A, R]) EndInput() {
	defer failOnStoreFailure(t.env, t.name, "end the input")
	t.op.EndInput()
}

// An aggregate's snapshot is binary: aggSnapshotVersion, then per key the uvarint length
// and bytes of the key (the key codec) and of the accumulator (stream.EncodeState). Memory
// and Badger key groups write the same bytes, so either restores what the other saved.
const aggSnapshotVersion = 2

// Restore loads the accumulators of a full snapshot: into the state backend when there is
// one. (Incremental snapshots are flattened when their checkpoint is loaded.)
func (t *aggregateTask[K, T, A, R]) Restore(state []byte) error {
	if chain, ok, err := decodeRunsRef(state); ok {
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return t.restoreRuns(chain)
	}
	if len(state) > 0 && state[0] == aggDeltaVersion {
		return errors.New("restore: an incremental snapshot, not flattened against the checkpoints it builds on")
	}
	if len(state) == 0 || state[0] != aggSnapshotVersion {
		return fmt.Errorf("decode aggregate snapshot: want version %d, got %d bytes", aggSnapshotVersion, len(state))
	}
	var keys, accs [][]byte
	flush := func() error {
		err := t.store.PutBatch(keys, accs)
		keys, accs = keys[:0], accs[:0]
		return err
	}
	for b := state[1:]; len(b) > 0; {
		kb, rest, err := cutUvarintBytes(b)
		if err != nil {
			return fmt.Errorf("decode aggregate snapshot: key: %w", err)
		}
		ab, rest, err := cutUvarintBytes(rest)
		if err != nil {
			return fmt.Errorf("decode aggregate snapshot: accumulator: %w", err)
		}
		b = rest
		if t.store != nil {
			keys, accs = append(keys, kb), append(accs, ab)
			if len(keys) == restoreBatch {
				if err := flush(); err != nil {
					return fmt.Errorf("restore: %w", err)
				}
			}
			continue
		}
		k, err := t.keys.Decode(kb)
		if err != nil {
			return fmt.Errorf("decode aggregate snapshot: key %x: %w", kb, err)
		}
		a, err := stream.DecodeState[A](ab)
		if err != nil {
			return fmt.Errorf("restore key %v: %w", k, err)
		}
		t.op.Put(k, a)
	}
	if t.store != nil && len(keys) > 0 {
		if err := flush(); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	return nil
}

// restoreBatch is how many keys go into one write batch when a snapshot is restored into
// the state backend.
const restoreBatch = 4096

// Snapshot encodes every key's accumulator; with a state backend it writes the changed ones
// back first and copies the key group's state from there. Id 0 is the state an instance
// ends with in a job without checkpoints, which nothing reads: with a state backend, where
// the state is already, it writes back and returns none (copying the whole state out of
// Badger into memory there made the heap grow with the state, docs/decisions-badgerspeed.md).
func (t *aggregateTask[K, T, A, R]) Snapshot(id int64) ([]byte, error) {
	out := []byte{aggSnapshotVersion}
	if t.store != nil {
		if err := t.flush(); err != nil {
			return nil, err
		}
		if id == 0 {
			if err := t.store.Flush(); err != nil {
				err = fmt.Errorf("final state: write back to the state store: %w", err)
				t.env.Fail(fmt.Errorf("stage %q: %w", t.name, err))
				return nil, err
			}
			return nil, nil
		}
		if ref, ok, err := t.streamSnapshot(id); ok {
			return ref, err // to the store as a stream: the checkpoint carries a handle
		}
		if t.deltas != nil {
			if delta, ok := t.deltas.snapshot(id); ok {
				return delta, nil // even with no pairs: it says "as at the base"
			}
		}
		err := t.store.Scan(func(k, v []byte) error {
			out = appendUvarintBytes(appendUvarintBytes(out, k), v)
			return nil
		})
		if err != nil {
			err = fmt.Errorf("snapshot checkpoint %d: read the state store: %w", id, err)
			t.env.Fail(fmt.Errorf("stage %q: %w", t.name, err))
			return nil, err
		}
	} else {
		var err error
		t.op.All(func(k K, a A) bool {
			var kb, ab []byte
			if kb, err = t.keys.Append(nil, k); err == nil {
				ab, err = stream.EncodeState(a)
			}
			if err != nil {
				err = fmt.Errorf("snapshot key %v: %w", k, err)
				return false
			}
			out = appendUvarintBytes(appendUvarintBytes(out, kb), ab)
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 1 {
		return nil, nil
	}
	return out, nil
}

// flush writes every changed accumulator back to the state store; a failure fails the job.
func (t *aggregateTask[K, T, A, R]) flush() (err error) {
	defer func() {
		if p := recover(); p != nil {
			sf, ok := p.(stateStoreFailure)
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("snapshot: %w", sf.err)
			t.env.Fail(fmt.Errorf("stage %q: %w", t.name, err))
		}
	}()
	t.op.Flush()
	return nil
}

func (t *aggregateTask[K, T, A, R]) Reset() { t.op.Reset() }

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
	op     *operator.ProcessOperator[K, T, O]
	out    *outBuffer[O]
	now    time.Time
	handle func(stream.Record[T]) error
	wm     func(int64)
	ttl    stream.TTL
}

func (t *processTask[K, T, O]) process(r stream.Record[T]) error { return t.op.Process(r, t.now) }

func (t *processTask[K, T, O]) Process(_ int, records any, start, end int) int {
	t.now = t.env.Now()
	return processRecords(t.env, t.name, records.([]stream.Record[T])[:end], start, t.handle)
}

// Watermark fires the event-time timers w has passed, sends what the stage emitted, then
// passes w on; an event-time TTL expires keys.
func (t *processTask[K, T, O]) Watermark(w int64) {
	t.op.Advance(w)
	if t.ttl.EventTime() {
		defer t.op.Expire(time.Time{})
	}
	now := t.env.Now()
	for {
		fired, err := t.fireEvent(now)
		if !fired {
			break
		}
		if err != nil {
			t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: err.Error(), Value: fmt.Sprintf("event-time timer, watermark %d", w)})
		}
	}
	t.out.flush()
	t.ic.endBatch()
	t.wm(w)
}

func (t *processTask[K, T, O]) fireEvent(now time.Time) (fired bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p) // the instance stops while its work waits for credit
			}
			fired, err = true, fmt.Errorf("panic in OnEventTimer: %v", p)
		}
	}()
	return t.op.FireEventTimer(now)
}

func (t *processTask[K, T, O]) EndBatch() {
	t.out.flush()
	t.ic.endBatch()
}

// NextTimer is the earlier of the next processing-time timer and the next expiry under a
// processing-time TTL.
// Snapshot encodes the keyed state, the timers and the watermark.
func (t *processTask[K, T, O]) Snapshot(int64) ([]byte, error) { return t.op.Snapshot() }

// Restore loads a snapshot; state values decode on their first read.
func (t *processTask[K, T, O]) Restore(state []byte) error { return t.op.Restore(state) }

func (t *processTask[K, T, O]) NextTimer() (time.Time, bool) {
	at, ok := t.op.NextTimer()
	if exp, expOK := t.op.NextExpiry(); expOK && (!ok || exp.Before(at)) {
		return exp, true
	}
	return at, ok
}
func (t *processTask[K, T, O]) Reset() { t.op.Reset() }

// FireTimers fires every timer due at now; the runtime ends a batch after it, which sends
// what the timers emitted on.
func (t *processTask[K, T, O]) FireTimers(now time.Time) {
	if t.ttl.Enabled() && !t.ttl.EventTime() {
		defer t.op.Expire(now)
	}
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
			if actor.Unwinding(p) {
				panic(p) // the instance stops while its work waits for credit
			}
			fired, err = true, fmt.Errorf("panic in OnTimer: %v", p)
		}
	}()
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

// forwardTask runs the chain after a Rebalance: each batch goes down it as it came.
type forwardTask[T any] struct {
	actor.NopTask
	ic   *inst
	push push[T]
	wm   func(int64)
}

func (t *forwardTask[T]) Process(_ int, records any, start, end int) int {
	recs := records.([]stream.Record[T])
	if start < end {
		t.push(recs[start:end])
	}
	return end
}

func (t *forwardTask[T]) Watermark(w int64) { t.wm(w) }

func (t *forwardTask[T]) EndBatch() { t.ic.endBatch() }

// stamper is the push of a Timestamps stage: it sets each record's time and hands on
// watermarks in step with the records they follow.
type stamper[T any] struct {
	env   *actor.Env
	name  string
	ts    func(T) int64
	gen   stream.WatermarkGenerator[T]
	next  push[T]
	wm    func(int64)
	out   []stream.Record[T]
	since int // records since the last periodic watermark
}

// push stamps a batch. A periodic watermark goes out after a batch that was short (the
// source had nothing more ready) or once periodicEvery batches' worth of records have passed
// since the last: a watermark after every full batch would make every receiver handle one
// every few records.
func (s *stamper[T]) push(in []stream.Record[T]) {
	s.out = s.out[:0]
	for i := 0; i < len(in); {
		i = s.from(in, i)
	}
	s.flush()
	s.since += len(in)
	batch := s.env.Config.BatchSize
	if len(in) < batch || s.since >= periodicEvery*batch {
		if w, ok := s.gen.OnBatchEnd(); ok {
			s.wm(w)
			s.since = 0
		}
	}
}

// periodicEvery is how many full batches of records may pass between periodic watermarks.
const periodicEvery = 16

func (s *stamper[T]) flush() {
	if len(s.out) > 0 {
		s.next(s.out)
	}
	clear(s.out)
	s.out = s.out[:0]
}

func (s *stamper[T]) from(in []stream.Record[T], start int) (next int) {
	defer recoverRecord(s.env, s.name, in, &next)
	for next = start; next < len(in); next++ {
		r := in[next]
		r.Time = s.ts(r.Value)
		s.out = append(s.out, r)
		if w, ok := s.gen.OnRecord(r.Value, r.Time); ok {
			// A punctuated watermark follows this very record.
			s.flush()
			s.wm(w)
		}
	}
	return next
}

// windowTask runs a WindowOperator in one key group.
type windowTask[K comparable, T, A, R any] struct {
	actor.NopTask
	env  *actor.Env
	name string
	ic   *inst
	op   *operator.WindowOperator[K, T, A, R]
	out  *outBuffer[stream.WindowResult[K, R]]
	wm   func(int64)
}

func (t *windowTask[K, T, A, R]) Process(_ int, records any, start, end int) int {
	t.op.SetProcessingTime(t.env.Now().UnixMilli())
	return processRecords(t.env, t.name, records.([]stream.Record[T])[:end], start, t.op.Process)
}

// Watermark fires the windows w has passed, sends what they emitted, then passes w on.
func (t *windowTask[K, T, A, R]) Watermark(w int64) {
	t.fire(w)
	t.out.flush()
	t.ic.endBatch()
	t.wm(w)
}

// fire advances the operator; a panic in the aggregator's Result costs that firing.
func (t *windowTask[K, T, A, R]) fire(w int64) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p) // the instance stops while its work waits for credit
			}
			t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: fmt.Sprintf("panic while firing windows at watermark %d: %v", w, p)})
		}
	}()
	t.op.Advance(w)
}

func (t *windowTask[K, T, A, R]) EndBatch() {
	t.out.flush()
	t.ic.endBatch()
}

func (t *windowTask[K, T, A, R]) Reset() { t.op.Reset() }

// Snapshot encodes the windows (their accumulators, firing state, the sliding windows'
// records).
func (t *windowTask[K, T, A, R]) Snapshot(int64) ([]byte, error) {
	if t.op.Windows() == 0 && t.op.Watermark() == stream.MinWatermark {
		return nil, nil
	}
	return t.op.Snapshot()
}

// Restore loads the windows of a snapshot.
func (t *windowTask[K, T, A, R]) Restore(state []byte) error {
	return t.op.Restore(state, t.env.Now().UnixMilli())
}

// NextTimer is when the next processing-time firing (early firings, the processing-time
// trigger) is due.
func (t *windowTask[K, T, A, R]) NextTimer() (time.Time, bool) {
	at, ok := t.op.NextTimer()
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(at), true
}

// FireTimers fires the processing-time firings due at now; the runtime ends a batch after.
func (t *windowTask[K, T, A, R]) FireTimers(now time.Time) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p) // the instance stops while its work waits for credit
			}
			t.env.DeadLetter(stream.DeadLetter{Stage: t.name, Reason: fmt.Sprintf("panic in a processing-time firing: %v", p)})
		}
	}()
	t.op.FireTimers(now.UnixMilli())
}

func (t *windowTask[K, T, A, R]) Inspect(key any) (any, bool) {
	k, ok := key.(K)
	if !ok {
		return nil, false
	}
	m := t.op.Get(k)
	return m, m != nil
}

// snapshotJSON encodes a task's snapshot, behind a version byte.
func snapshotJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return append([]byte{1}, b...), nil
}

// decodeSnapshot decodes what snapshotJSON encoded.
func decodeSnapshot(b []byte, v any) error {
	if len(b) == 0 || b[0] != 1 {
		return fmt.Errorf("decode snapshot: want version 1, got %d bytes", len(b))
	}
	if err := json.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	return nil
}

// appendUvarintBytes appends b's length as a uvarint, then b.
func appendUvarintBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// cutUvarintBytes cuts what appendUvarintBytes wrote off the front of b.
func cutUvarintBytes(b []byte) (field, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, fmt.Errorf("bad length at %d bytes before the end", len(b))
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}

// replayable is a split that can rewind (see stream.Split): one that can take part in
// checkpoints.
type replayable interface {
	Offset() ([]byte, error)
	Seek(offset []byte) error
}

// appender is a split that appends records to a slice directly: the fast path for generated
// and in-memory sources, with no call per record into the reader. Append appends at most max
// records to dst and returns the extended slice; like Read it returns io.EOF at the end. A
// panic in a user function it calls is recovered and returned as a *stream.PanicError, with
// what was appended before it in the returned slice.
type appender[T any] interface {
	Append(ctx context.Context, dst []stream.Record[T], max int) ([]stream.Record[T], error)
}

// batchMapper is the push of a MapBatches stage. f may call emit and reject from its own
// goroutines, hence the lock; they append to out and rejected, handed on once f returns.
type batchMapper[T, O any] struct {
	env    *actor.Env
	name   string
	f      func(context.Context, []stream.Record[T], func(stream.Record[O]), func(stream.Record[T], string))
	emit   func(stream.Record[O])
	reject func(stream.Record[T], string)

	mu       sync.Mutex
	out      []stream.Record[O]
	rejected []rejected[T]
}

type rejected[T any] struct {
	rec    stream.Record[T]
	reason string
}

// run calls f on in; a panic in f drops what it emitted and rejects every record of in.
func (bm *batchMapper[T, O]) run(in []stream.Record[T]) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p) // the instance stops while its work waits for credit
			}
			bm.mu.Lock()
			defer bm.mu.Unlock()
			clear(bm.out)
			clear(bm.rejected)
			bm.out, bm.rejected = bm.out[:0], bm.rejected[:0]
			for _, r := range in {
				bm.rejected = append(bm.rejected, rejected[T]{r, fmt.Sprintf("panic in the batch function: %v", p)})
			}
		}
	}()
	bm.f(bm.env.Context(), in, bm.emit, bm.reject)
}
