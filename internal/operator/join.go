package operator

import (
	"container/heap"
	"fmt"
	"time"
)

// IntervalJoinOperator joins two keyed streams on time: a record a of the first and b of the
// second with the same key join when b.ts ∈ [a.ts+lower, a.ts+upper] (Flink's interval
// join). Each side keeps its records only as long as a record of the other side that is not
// late could still join them: state is cleaned up by the watermark. A record at or below
// the watermark when it arrives is late: it goes to the late output, not into state.
// Results carry the larger of the two timestamps.
type IntervalJoinOperator[K comparable, A, B, O any] struct {
	keyA         func(A) K
	keyB         func(B) K
	lower, upper int64
	join         func(A, B) (O, error)
	out          func(Record[O])
	lateA        func(Record[A])
	lateB        func(Record[B])

	wm     int64
	keys   map[K]*intervalState[A, B]
	expiry expiryHeap[K]
}

type intervalState[A, B any] struct {
	as []Record[A]
	bs []Record[B]
}

// NewIntervalJoinOperator returns an interval join of [lower, upper] (lower ≤ upper).
func NewIntervalJoinOperator[K comparable, A, B, O any](keyA func(A) K, keyB func(B) K, lower, upper time.Duration,
	join func(A, B) (O, error), out func(Record[O]), lateA func(Record[A]), lateB func(Record[B])) (*IntervalJoinOperator[K, A, B, O], error) {
	if lower > upper {
		return nil, fmt.Errorf("interval join: lower bound %v is above upper bound %v", lower, upper)
	}
	return &IntervalJoinOperator[K, A, B, O]{keyA: keyA, keyB: keyB, lower: lower.Milliseconds(), upper: upper.Milliseconds(),
		join: join, out: out, lateA: lateA, lateB: lateB, wm: MinWatermark, keys: map[K]*intervalState[A, B]{}}, nil
}

func (op *IntervalJoinOperator[K, A, B, O]) late(ts int64) bool {
	return op.wm != MinWatermark && ts <= op.wm
}

func (op *IntervalJoinOperator[K, A, B, O]) state(k K) *intervalState[A, B] {
	st := op.keys[k]
	if st == nil {
		st = &intervalState[A, B]{}
		op.keys[k] = st
	}
	return st
}

// ProcessA joins a record of the first stream with the second's buffered records of its key,
// and keeps it while records of the second could still join it.
func (op *IntervalJoinOperator[K, A, B, O]) ProcessA(r Record[A]) error {
	if op.late(r.Time) {
		op.lateA(r)
		return nil
	}
	k := op.keyA(r.Value)
	st := op.state(k)
	for _, b := range st.bs {
		if b.Time >= r.Time+op.lower && b.Time <= r.Time+op.upper {
			if err := op.emit(r.Value, b.Value, max(r.Time, b.Time)); err != nil {
				return err
			}
		}
	}
	// A future b is above the watermark; it can join r while r.ts+upper ≥ b.ts > W.
	st.as = append(st.as, r)
	heap.Push(&op.expiry, expiry[K]{at: r.Time + op.upper, key: k})
	return nil
}

// ProcessB is ProcessA for the second stream.
func (op *IntervalJoinOperator[K, A, B, O]) ProcessB(r Record[B]) error {
	if op.late(r.Time) {
		op.lateB(r)
		return nil
	}
	k := op.keyB(r.Value)
	st := op.state(k)
	for _, a := range st.as {
		if r.Time >= a.Time+op.lower && r.Time <= a.Time+op.upper {
			if err := op.emit(a.Value, r.Value, max(r.Time, a.Time)); err != nil {
				return err
			}
		}
	}
	st.bs = append(st.bs, r)
	heap.Push(&op.expiry, expiry[K]{at: r.Time - op.lower, key: k})
	return nil
}

func (op *IntervalJoinOperator[K, A, B, O]) emit(a A, b B, ts int64) error {
	o, err := op.join(a, b)
	if err != nil {
		return err
	}
	op.out(Record[O]{Value: o, Time: ts})
	return nil
}

// Advance moves the watermark to w and drops the records no future record can join.
func (op *IntervalJoinOperator[K, A, B, O]) Advance(w int64) {
	if w <= op.wm {
		return
	}
	op.wm = w
	for op.expiry.Len() > 0 && op.expiry[0].at <= w {
		e := heap.Pop(&op.expiry).(expiry[K])
		st := op.keys[e.key]
		if st == nil {
			continue
		}
		st.as = keep(st.as, func(r Record[A]) bool { return r.Time+op.upper > w })
		st.bs = keep(st.bs, func(r Record[B]) bool { return r.Time-op.lower > w })
		if len(st.as) == 0 && len(st.bs) == 0 {
			delete(op.keys, e.key)
		}
	}
}

// Buffered returns how many records each side holds, for tests and inspection.
func (op *IntervalJoinOperator[K, A, B, O]) Buffered(key K) (as, bs int) {
	if st := op.keys[key]; st != nil {
		return len(st.as), len(st.bs)
	}
	return 0, 0
}

// Reset drops all state.
func (op *IntervalJoinOperator[K, A, B, O]) Reset() {
	op.keys = map[K]*intervalState[A, B]{}
	op.expiry = nil
}

func keep[T any](s []Record[T], ok func(Record[T]) bool) []Record[T] {
	out := s[:0]
	for _, r := range s {
		if ok(r) {
			out = append(out, r)
		}
	}
	clear(s[len(out):])
	return out
}

type expiry[K comparable] struct {
	at  int64
	key K
}

type expiryHeap[K comparable] []expiry[K]

func (h expiryHeap[K]) Len() int           { return len(h) }
func (h expiryHeap[K]) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap[K]) Push(x any)        { *h = append(*h, x.(expiry[K])) }
func (h *expiryHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Either is a record of one of two streams: the input of a window join.
type Either[A, B any] struct {
	A   A
	B   B
	IsB bool
}

// CoGroup holds the records of both streams in one window of one key.
type CoGroup[A, B any] struct {
	As []A
	Bs []B
}

// CoGroupAgg collects the records of both sides of a window join; it merges, for session
// windows.
type CoGroupAgg[A, B any] struct{}

func (CoGroupAgg[A, B]) Zero() CoGroup[A, B] { return CoGroup[A, B]{} }
func (CoGroupAgg[A, B]) Add(acc CoGroup[A, B], e Either[A, B]) CoGroup[A, B] {
	if e.IsB {
		acc.Bs = append(acc.Bs, e.B)
	} else {
		acc.As = append(acc.As, e.A)
	}
	return acc
}
func (CoGroupAgg[A, B]) Merge(x, y CoGroup[A, B]) CoGroup[A, B] {
	return CoGroup[A, B]{As: append(append([]A(nil), x.As...), y.As...), Bs: append(append([]B(nil), x.Bs...), y.Bs...)}
}
func (CoGroupAgg[A, B]) Result(acc CoGroup[A, B]) CoGroup[A, B] { return acc }

// TableJoinOperator joins a stream with a table built from a changelog stream: the table
// keeps the latest value per key (an insert upserts, a retract deletes), and each stream
// record is joined with its key's current value, in arrival order (Kafka Streams' KStream-
// KTable join). join sees found = false when the key has no value; it returns ok = false to
// emit nothing (an inner join).
type TableJoinOperator[K comparable, T, V, O any] struct {
	keyT  func(T) K
	keyV  func(V) K
	join  func(t T, v V, found bool) (O, bool, error)
	out   func(Record[O])
	table map[K]V
}

// NewTableJoinOperator returns a stream-table join.
func NewTableJoinOperator[K comparable, T, V, O any](keyT func(T) K, keyV func(V) K, join func(t T, v V, found bool) (O, bool, error), out func(Record[O])) *TableJoinOperator[K, T, V, O] {
	return &TableJoinOperator[K, T, V, O]{keyT: keyT, keyV: keyV, join: join, out: out, table: map[K]V{}}
}

// ProcessStream joins a stream record with its key's current table value.
func (op *TableJoinOperator[K, T, V, O]) ProcessStream(r Record[T]) error {
	v, found := op.table[op.keyT(r.Value)]
	o, ok, err := op.join(r.Value, v, found)
	if err != nil || !ok {
		return err
	}
	op.out(Record[O]{Value: o, Time: r.Time, Kind: r.Kind})
	return nil
}

// ProcessTable applies a changelog record to the table.
func (op *TableJoinOperator[K, T, V, O]) ProcessTable(r Record[V]) {
	k := op.keyV(r.Value)
	if r.Kind == Retract {
		delete(op.table, k)
		return
	}
	op.table[k] = r.Value
}

// Get returns key's table value.
func (op *TableJoinOperator[K, T, V, O]) Get(key K) (V, bool) {
	v, ok := op.table[key]
	return v, ok
}

// Reset drops the table.
func (op *TableJoinOperator[K, T, V, O]) Reset() { op.table = map[K]V{} }

// TemporalJoinOperator joins each stream record with the version of its key's table value
// as of the record's timestamp: the latest version whose timestamp is at or below it (Flink's
// event-time temporal join). A stream record waits until the watermark reaches its
// timestamp, when every version up to it is known; versions no waiting or future record can
// need are dropped as the watermark moves. join sees found = false when no version is old
// enough; it returns ok = false to emit nothing.
type TemporalJoinOperator[K comparable, T, V, O any] struct {
	keyT func(T) K
	keyV func(V) K
	join func(t T, v V, found bool) (O, bool, error)
	out  func(Record[O])

	wm      int64
	keys    map[K]*temporalState[T, V]
	waiting expiryHeap[K]
}

type temporalState[T, V any] struct {
	versions []Record[V] // by timestamp
	pending  []Record[T]
}

// NewTemporalJoinOperator returns an event-time temporal join.
func NewTemporalJoinOperator[K comparable, T, V, O any](keyT func(T) K, keyV func(V) K, join func(t T, v V, found bool) (O, bool, error), out func(Record[O])) *TemporalJoinOperator[K, T, V, O] {
	return &TemporalJoinOperator[K, T, V, O]{keyT: keyT, keyV: keyV, join: join, out: out, wm: MinWatermark, keys: map[K]*temporalState[T, V]{}}
}

func (op *TemporalJoinOperator[K, T, V, O]) state(k K) *temporalState[T, V] {
	st := op.keys[k]
	if st == nil {
		st = &temporalState[T, V]{}
		op.keys[k] = st
	}
	return st
}

// ProcessStream holds a stream record until the watermark reaches it.
func (op *TemporalJoinOperator[K, T, V, O]) ProcessStream(r Record[T]) {
	k := op.keyT(r.Value)
	st := op.state(k)
	st.pending = append(st.pending, r)
	heap.Push(&op.waiting, expiry[K]{at: r.Time, key: k})
}

// ProcessTable adds a version (an insert) or a deletion (a retract: from its timestamp on,
// the key has no value).
func (op *TemporalJoinOperator[K, T, V, O]) ProcessTable(r Record[V]) {
	k := op.keyV(r.Value)
	st := op.state(k)
	// When the watermark passes it, older versions can go.
	heap.Push(&op.waiting, expiry[K]{at: r.Time, key: k})
	i := len(st.versions)
	for i > 0 && st.versions[i-1].Time > r.Time {
		i--
	}
	st.versions = append(st.versions, Record[V]{})
	copy(st.versions[i+1:], st.versions[i:])
	st.versions[i] = r
}

// Advance moves the watermark to w: stream records at or below it are joined, in timestamp
// order per key, and versions older than the one in force at w are dropped.
func (op *TemporalJoinOperator[K, T, V, O]) Advance(w int64) error {
	if w <= op.wm {
		return nil
	}
	op.wm = w
	var errs []error
	for op.waiting.Len() > 0 && op.waiting[0].at <= w {
		e := heap.Pop(&op.waiting).(expiry[K])
		st := op.keys[e.key]
		if st == nil {
			continue
		}
		kept := st.pending[:0]
		for _, r := range st.pending {
			if r.Time > w {
				kept = append(kept, r)
				continue
			}
			if err := op.emit(st, r); err != nil {
				errs = append(errs, err)
			}
		}
		clear(st.pending[len(kept):])
		st.pending = kept
		// Keep the version in force at w and those after it.
		n := 0
		for n+1 < len(st.versions) && st.versions[n+1].Time <= w {
			n++
		}
		st.versions = st.versions[n:]
		if len(st.pending) == 0 && len(st.versions) == 1 && st.versions[0].Kind == Retract {
			delete(op.keys, e.key)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("temporal join: %d records failed, first: %w", len(errs), errs[0])
	}
	return nil
}

func (op *TemporalJoinOperator[K, T, V, O]) emit(st *temporalState[T, V], r Record[T]) error {
	var v V
	found := false
	for i := len(st.versions) - 1; i >= 0; i-- {
		if st.versions[i].Time <= r.Time {
			if st.versions[i].Kind != Retract {
				v, found = st.versions[i].Value, true
			}
			break
		}
	}
	o, ok, err := op.join(r.Value, v, found)
	if err != nil || !ok {
		return err
	}
	op.out(Record[O]{Value: o, Time: r.Time})
	return nil
}

// Reset drops all state.
func (op *TemporalJoinOperator[K, T, V, O]) Reset() {
	op.keys = map[K]*temporalState[T, V]{}
	op.waiting = nil
}
