package operator

import (
	"errors"
	"fmt"

	"github.com/eddyflow/eddy/stream"
)

// AggregateOperator runs an Aggregator per key over the records of one key group and emits
// KV results as EmitMode says.
type AggregateOperator[K comparable, T, A, R any] struct {
	key     func(T) K
	agg     Aggregator[T, A, R]
	retract func(A, T) A
	merge   func(A, A) A
	mode    EmitMode
	push    func(Record[KV[K, R]])

	entries map[K]*aggEntry[K, A]
	dirty   []*aggEntry[K, A]
	epoch   uint64

	ttl    TTL
	expiry *ttlTracker[K]
	now    int64
	wm     int64

	// store, when set, keeps the accumulators outside memory: entries is then a cache of
	// the keys of recent batches, written back after each batch.
	store      AccStore
	keyBytes   func(K) ([]byte, error)
	cacheLimit int
	touched    []*aggEntry[K, A]
	// prefetchEntries and prefetchKeys are Prefetch's buffers.
	prefetchEntries []*aggEntry[K, A]
	prefetchKeys    [][]byte
	flushEpoch      uint64
	// written, when set, is told every key and accumulator written back to the store.
	written func(key, value []byte)
}

// OnWriteBack makes the operator call f with the bytes of every key and accumulator it
// writes back to its store, in order: what an incremental checkpoint ships. f must not keep
// the slices past the call.
func (op *AggregateOperator[K, T, A, R]) OnWriteBack(f func(key, value []byte)) { op.written = f }

// AccStore keeps the accumulators of an AggregateOperator outside memory (a key group's
// keyed values in Badger, say), so keyed state can be far larger than RAM.
type AccStore interface {
	// GetBatch calls found with the index and value of each of keys that has a value; the
	// value is valid only during the call.
	GetBatch(keys [][]byte, found func(i int, value []byte) error) error
	// PutBatch writes values[i] under keys[i]; it may keep neither slice.
	PutBatch(keys, values [][]byte) error
}

// SetStore makes the operator keep its accumulators in store, by the bytes keyBytes gives a
// key, with at most about cacheLimit keys in memory between batches. It goes with
// EmitPerBatch or EmitEveryUpdate and without a TTL. A failing store is a panic: the job
// fails, since state would be lost.
func (op *AggregateOperator[K, T, A, R]) SetStore(store AccStore, keyBytes func(K) ([]byte, error), cacheLimit int) error {
	if op.mode == EmitAtEnd || op.ttl.Enabled() {
		return errors.New("aggregate: a state store goes with per-batch or every-update emission and no TTL")
	}
	op.store, op.keyBytes, op.cacheLimit = store, keyBytes, max(cacheLimit, 1)
	return nil
}

// load returns key's accumulator from the store, or a zero one.
func (op *AggregateOperator[K, T, A, R]) load(k K) A {
	acc := op.agg.Zero()
	kb, err := op.keyBytes(k)
	if err != nil {
		panic(fmt.Sprintf("aggregate: key %v: %v", k, err))
	}
	err = op.store.GetBatch([][]byte{kb}, func(_ int, b []byte) error {
		var err error
		acc, err = DecodeState[A](b)
		return err
	})
	if err != nil {
		panic(&stream.StateError{Op: fmt.Sprintf("aggregate: load key %v", k), Err: err})
	}
	return acc
}

// Prefetch brings the accumulators of keys that are not in memory into it from the store,
// in one read (which costs nothing for keys the store knows it does not hold): the records
// of a batch then fold without a read each. Without a store it does nothing.
func (op *AggregateOperator[K, T, A, R]) Prefetch(keys []K) {
	if op.store == nil {
		return
	}
	missing, kbs := op.prefetchEntries[:0], op.prefetchKeys[:0]
	for _, k := range keys {
		if op.entries[k] != nil {
			continue
		}
		kb, err := op.keyBytes(k)
		if err != nil {
			continue // Process reports it, for the record that has it
		}
		e := &aggEntry[K, A]{key: k, acc: op.agg.Zero()}
		op.entries[k] = e
		missing, kbs = append(missing, e), append(kbs, kb)
	}
	if len(missing) > 0 {
		err := op.store.GetBatch(kbs, func(i int, b []byte) error {
			acc, err := DecodeState[A](b)
			if err != nil {
				return fmt.Errorf("key %v: %w", missing[i].key, err)
			}
			missing[i].acc = acc
			return nil
		})
		if err != nil {
			for _, e := range missing {
				delete(op.entries, e.key) // not loaded: Process loads it again
			}
			panic(&stream.StateError{Op: fmt.Sprintf("aggregate: load %d keys", len(kbs)), Err: err})
		}
	}
	clear(missing)
	clear(kbs)
	op.prefetchEntries, op.prefetchKeys = missing[:0], kbs[:0]
}

// writeBackEvery is how many changed keys wait in memory before they are written back:
// one write batch per few records would cost far more than the writes.
const writeBackEvery = 2048

// writeBack writes the changed accumulators to the store once enough have gathered (or
// always, with force), and empties the cache when it has grown past its limit.
func (op *AggregateOperator[K, T, A, R]) writeBack(force bool) {
	if op.store == nil || len(op.touched) == 0 || (!force && len(op.touched) < writeBackEvery) {
		return
	}
	keys := make([][]byte, 0, len(op.touched))
	values := make([][]byte, 0, len(op.touched))
	for i, e := range op.touched {
		kb, err := op.keyBytes(e.key)
		if err == nil {
			var v []byte
			if v, err = EncodeState(e.acc); err == nil {
				keys, values = append(keys, kb), append(values, v)
			}
		}
		if err != nil {
			panic(fmt.Sprintf("aggregate: write back key %v: %v", e.key, err))
		}
		op.touched[i] = nil
	}
	op.touched = op.touched[:0]
	op.flushEpoch++
	if op.written != nil {
		for i := range keys {
			op.written(keys[i], values[i])
		}
	}
	if err := op.store.PutBatch(keys, values); err != nil {
		panic(fmt.Sprintf("aggregate: write back %d keys: %v", len(keys), err))
	}
	if len(op.entries) > op.cacheLimit {
		op.entries = make(map[K]*aggEntry[K, A], op.cacheLimit)
	}
}

// SetTTL makes the operator drop a key's accumulator once ttl has passed since the key's
// last record; a key that comes back starts from zero.
func (op *AggregateOperator[K, T, A, R]) SetTTL(ttl TTL) error {
	if err := ttl.Validate(); err != nil {
		return err
	}
	op.ttl, op.expiry = ttl, newTTLTracker[K](ttl)
	return nil
}

// SetProcessingTime tells the operator the processing time (Unix ms) for a processing-time
// TTL.
func (op *AggregateOperator[K, T, A, R]) SetProcessingTime(now int64) { op.now = now }

// Advance moves the watermark, for an event-time TTL, and expires what has run out.
func (op *AggregateOperator[K, T, A, R]) Advance(w int64) {
	op.wm = max(op.wm, w)
	if op.ttl.EventTime() {
		op.Expire(op.wm)
	}
}

// Expire drops the accumulators of keys whose TTL has run out at now (Unix ms; the
// watermark for an event-time TTL).
func (op *AggregateOperator[K, T, A, R]) Expire(now int64) {
	op.expiry.expire(now, func(k K) {
		if e := op.entries[k]; e != nil && e.mark == op.epoch {
			return // changed in this batch: its result has not been sent yet
		}
		delete(op.entries, k)
	})
}

// NextExpiry returns when the next key may expire (processing-time TTL only), in Unix ms.
func (op *AggregateOperator[K, T, A, R]) NextExpiry() (int64, bool) {
	if op.ttl.EventTime() {
		return 0, false
	}
	return op.expiry.next()
}

type aggEntry[K comparable, A any] struct {
	key    K
	acc    A
	ts     int64
	mark   uint64
	stored uint64 // flushEpoch+1 when the batch being written back changed it
}

// NewAggregateOperator returns an operator that keys records with key, folds them with agg
// and hands results to push.
func NewAggregateOperator[K comparable, T, A, R any](key func(T) K, agg Aggregator[T, A, R], mode EmitMode, push func(Record[KV[K, R]])) *AggregateOperator[K, T, A, R] {
	op := &AggregateOperator[K, T, A, R]{key: key, agg: agg, mode: mode, push: push, entries: make(map[K]*aggEntry[K, A]), epoch: 1, wm: MinWatermark}
	if r, ok := agg.(Retracter[T, A]); ok {
		op.retract = r.Retract
	}
	if m, ok := agg.(Merger[A]); ok {
		op.merge = m.Merge
	}
	return op
}

// Process folds one record into its key's accumulator.
func (op *AggregateOperator[K, T, A, R]) Process(r Record[T]) error {
	k := op.key(r.Value)
	if r.Kind == Retract && op.retract == nil {
		return fmt.Errorf("retract for key %v: %w", k, ErrCannotRetract)
	}
	e := op.entry(k)
	if r.Kind == Retract {
		e.acc = op.retract(e.acc, r.Value)
	} else {
		e.acc = op.agg.Add(e.acc, r.Value)
	}
	op.updated(e, r.Time)
	return nil
}

// Merge folds a partial accumulator of key, made upstream from records up to time ts (local
// aggregation), into the key's accumulator: as if those records came one by one, but for
// the results in between, which are not sent. It needs an aggregator that implements
// Merger.
func (op *AggregateOperator[K, T, A, R]) Merge(key K, partial A, ts int64) error {
	if op.merge == nil {
		return fmt.Errorf("partial aggregate for key %v: the aggregator does not merge", key)
	}
	e := op.entry(key)
	e.acc = op.merge(e.acc, partial)
	op.updated(e, ts)
	return nil
}

// entry returns key's entry, loaded from the store or new when it is not in memory, and
// marks it to be written back.
func (op *AggregateOperator[K, T, A, R]) entry(k K) *aggEntry[K, A] {
	e := op.entries[k]
	if e == nil {
		if op.store != nil {
			e = &aggEntry[K, A]{key: k, acc: op.load(k)}
		} else {
			e = &aggEntry[K, A]{key: k, acc: op.agg.Zero()}
		}
		op.entries[k] = e
	}
	if op.store != nil && e.stored != op.flushEpoch+1 {
		e.stored = op.flushEpoch + 1
		op.touched = append(op.touched, e)
	}
	return e
}

// updated records that e's accumulator changed with a record (or partial) of time ts: its
// TTL, and its result, sent now or at the end of the batch as the emit mode says.
func (op *AggregateOperator[K, T, A, R]) updated(e *aggEntry[K, A], ts int64) {
	if ts > e.ts {
		e.ts = ts
	}
	if op.expiry != nil {
		if op.ttl.EventTime() {
			op.expiry.touch(e.key, ts)
		} else {
			op.expiry.touch(e.key, op.now)
		}
	}
	if op.mode == EmitEveryUpdate {
		op.push(Record[KV[K, R]]{Value: KV[K, R]{Key: e.key, Value: op.agg.Result(e.acc)}, Time: e.ts})
		return
	}
	if e.mark != op.epoch {
		e.mark = op.epoch
		op.dirty = append(op.dirty, e)
	}
}

// EndBatch emits the compacted updates of the batch (EmitPerBatch) and writes the changed
// accumulators back to the store, if there is one.
func (op *AggregateOperator[K, T, A, R]) EndBatch() {
	if op.mode == EmitPerBatch {
		op.emitDirty()
	}
	op.writeBack(false)
}

// EndInput emits what is still held back (EmitPerBatch, EmitAtEnd) once the input has
// ended, and writes back every changed accumulator.
func (op *AggregateOperator[K, T, A, R]) EndInput() {
	op.emitDirty()
	op.writeBack(true)
}

func (op *AggregateOperator[K, T, A, R]) emitDirty() {
	for i, e := range op.dirty {
		op.push(Record[KV[K, R]]{Value: KV[K, R]{Key: e.key, Value: op.agg.Result(e.acc)}, Time: e.ts})
		op.dirty[i] = nil
	}
	op.dirty = op.dirty[:0]
	op.epoch++
}

// Flush writes every changed accumulator back to the store, if there is one, so that the
// store holds the whole state (a checkpoint copies it from there).
func (op *AggregateOperator[K, T, A, R]) Flush() { op.writeBack(true) }

// Get returns key's accumulator, for inspection and tests.
func (op *AggregateOperator[K, T, A, R]) Get(key K) (A, bool) {
	e, ok := op.entries[key]
	if !ok {
		var zero A
		return zero, false
	}
	return e.acc, true
}

// Put sets key's accumulator (restoring a snapshot).
func (op *AggregateOperator[K, T, A, R]) Put(key K, acc A) {
	op.entries[key] = &aggEntry[K, A]{key: key, acc: acc}
}

// All calls f for every key and its accumulator, in no fixed order, until f returns false.
func (op *AggregateOperator[K, T, A, R]) All(f func(K, A) bool) {
	for k, e := range op.entries {
		if !f(k, e.acc) {
			return
		}
	}
}

// Len returns how many keys hold an accumulator.
func (op *AggregateOperator[K, T, A, R]) Len() int { return len(op.entries) }

// Reset drops all accumulators.
func (op *AggregateOperator[K, T, A, R]) Reset() {
	op.entries = make(map[K]*aggEntry[K, A])
	op.dirty = op.dirty[:0]
	op.epoch++
	op.expiry.reset()
}
