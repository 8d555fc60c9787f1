package operator

import (
	"container/heap"
	"errors"
	"fmt"
	"time"
)

// WindowOptions tunes a window operator.
type WindowOptions struct {
	// Trigger says when windows fire (default: when the watermark passes their end).
	Trigger Trigger
	// Lateness is how long after a window's end (in event time) records may still update
	// it; each such record fires the window again. 0: none.
	Lateness time.Duration
	// Changelog sends a retraction of a window's previous result before each re-firing,
	// instead of a plain update.
	Changelog bool
}

// WindowOperator aggregates the records of one key group into event-time windows and fires
// them as the watermark passes their end, with Flink's semantics:
//
//   - A record is too late for a window when window end + lateness ≤ W, W being the
//     watermark before the record. It goes to the late output only when it is too late for
//     every window it belongs to; otherwise it is added to the windows it is not too late for.
//   - A window fires when its end ≤ W. A record added to a window whose end ≤ W fires it
//     (again) at once. A window's state is dropped when end + lateness ≤ W.
//   - Session windows of a key that overlap or touch merge (only with sessions whose state is
//     not yet dropped); a merged session whose end ≤ W fires at once.
//   - At the end of input (W = MaxWatermark) every window not yet fired fires.
//
// Results carry the window's end − 1 as their timestamp, the last instant inside it.
type WindowOperator[K comparable, T, A, R any] struct {
	key     func(T) K
	windows WindowAssigner
	// windowSize is the windows' size in ms (a session's gap, a sliding window's difference).
	windowSize int64
	agg        Aggregator[T, A, R]
	retract    func(A, T) A
	merge      func(A, A) A
	lateness   int64
	opts       WindowOptions
	out        func(Record[WindowResult[K, R]])
	late       func(Record[T])

	wm     int64
	keys   map[K][]*windowState[K, A]
	due    windowHeap[K, A]
	seq    uint64
	assign []TimeWindow
	// now is the processing time (ms) the caller last gave; timers holds processing-time
	// firings (of the processing-time trigger, and early firings).
	now    int64
	timers procHeap[K, A]
	// buffered holds records of sliding windows that later records' windows may need.
	buffered map[K][]Record[T]
	expiry   expiryHeap[K]
}

type windowState[K comparable, A any] struct {
	key    K
	w      TimeWindow
	acc    A
	fired  bool // it has fired at least once (early firings count)
	onTime bool // the watermark has passed its end and it has fired for that
	last   any  // the last result sent, for changelog retractions
	gone   bool
	seq    uint64
	heapAt int
	// n counts the records added since the last firing; dirty says there are some.
	n     int64
	dirty bool
	// earlyAt is when the next early firing is due (processing time, ms); 0: none.
	earlyAt int64
}

// NewWindowOperator returns a window operator that keys records with key, aggregates them
// with agg, sends results to out and late records to late. Session windows need an agg that
// implements Merger.
func NewWindowOperator[K comparable, T, A, R any](key func(T) K, windows WindowAssigner, agg Aggregator[T, A, R], opts WindowOptions,
	out func(Record[WindowResult[K, R]]), late func(Record[T])) (*WindowOperator[K, T, A, R], error) {
	if err := windows.Validate(); err != nil {
		return nil, err
	}
	if opts.Lateness < 0 {
		return nil, fmt.Errorf("windows: negative lateness %v", opts.Lateness)
	}
	if err := opts.Trigger.Validate(); err != nil {
		return nil, fmt.Errorf("windows: %w", err)
	}
	if windows.IsGlobal() && opts.Trigger.IsEventTime() && opts.Trigger.EarlyFirings() == 0 {
		// Legal, but it fires only at the end of input: the usual mistake is a missing
		// count trigger, so say so where the graph is built.
		return nil, errors.New("windows: global windows with the event-time trigger fire only at the end of input; give a CountTrigger or a ProcessingTimeTrigger")
	}
	op := &WindowOperator[K, T, A, R]{key: key, windows: windows, agg: agg, opts: opts, lateness: opts.Lateness.Milliseconds(),
		out: out, late: late, wm: MinWatermark, keys: map[K][]*windowState[K, A]{}}
	op.windowSize = windows.Size().Milliseconds()
	op.due.lateness = op.lateness
	op.due.byEnd = opts.Trigger.IsEventTime()
	if r, ok := agg.(Retracter[T, A]); ok {
		op.retract = r.Retract
	}
	if m, ok := agg.(Merger[A]); ok {
		op.merge = m.Merge
	}
	if windows.IsSession() && op.merge == nil {
		return nil, fmt.Errorf("windows: session windows merge, and the aggregator %T cannot (it does not implement Merger)", agg)
	}
	return op, nil
}

// Watermark returns the operator's current watermark.
func (op *WindowOperator[K, T, A, R]) Watermark() int64 { return op.wm }

// tooLate says whether a window is past its lateness at the current watermark. The sums are
// kept from overflowing at the watermark's bounds.
func (op *WindowOperator[K, T, A, R]) tooLate(w TimeWindow) bool {
	if op.wm == MinWatermark {
		return false
	}
	return w.End <= op.wm-op.lateness
}

// Process adds one record under the current watermark.
func (op *WindowOperator[K, T, A, R]) Process(r Record[T]) error {
	if r.Kind == Retract && op.retract == nil {
		return fmt.Errorf("retract into windows: %w", ErrCannotRetract)
	}
	k := op.key(r.Value)
	switch {
	case op.windows.IsSession():
		return op.processSession(k, r)
	case op.windows.IsSliding():
		return op.processSliding(k, r)
	}
	op.assign = op.windows.AssignWindows(r.Time, op.assign[:0])
	accepted := false
	for _, w := range op.assign {
		if op.tooLate(w) {
			continue
		}
		accepted = true
		ws := op.find(k, w)
		if ws == nil {
			ws = op.open(k, w, op.agg.Zero())
		}
		op.add(ws, r)
		op.afterAdd(ws)
	}
	if !accepted {
		op.late(r)
	}
	return nil
}

func (op *WindowOperator[K, T, A, R]) processSession(k K, r Record[T]) error {
	w := TimeWindow{Start: r.Time, End: r.Time + op.windowSize}
	acc := op.agg.Zero()
	merged := false
	var n int64
	list := op.keys[k]
	kept := list[:0]
	for _, ws := range list {
		if ws.w.Start <= w.End && ws.w.End >= w.Start {
			w = TimeWindow{Start: min(w.Start, ws.w.Start), End: max(w.End, ws.w.End)}
			acc = op.merge(acc, ws.acc)
			n += ws.n
			merged = true
			ws.gone = true
			heap.Remove(&op.due, ws.heapAt)
			continue
		}
		kept = append(kept, ws)
	}
	clear(list[len(kept):])
	op.keys[k] = kept
	if !merged && op.tooLate(w) {
		if len(kept) == 0 {
			delete(op.keys, k)
		}
		op.late(r)
		return nil
	}
	ws := op.open(k, w, acc)
	op.add(ws, r)
	ws.n += n // records of the merged parts not yet fired

	op.afterAdd(ws)
	return nil
}

// afterAdd applies the trigger to a window a record was just added to.
func (op *WindowOperator[K, T, A, R]) afterAdd(ws *windowState[K, A]) {
	switch t := op.opts.Trigger; {
	case t.IsEventTime():
		if ws.w.End <= op.wm {
			op.fire(ws)
			if !ws.onTime {
				ws.onTime = true
				heap.Fix(&op.due, ws.heapAt) // now due at end + lateness, not at end
			}
		} else if t.EarlyFirings() > 0 && ws.earlyAt == 0 {
			ws.earlyAt = op.now + t.EarlyFirings().Milliseconds()
			heap.Push(&op.timers, procTimer[K, A]{at: ws.earlyAt, ws: ws})
		}
	case t.Count() > 0:
		if ws.n >= t.Count() {
			op.fire(ws)
		}
	case t.IsProcessingTime():
		if ws.earlyAt == 0 {
			ws.earlyAt = ws.w.End
			heap.Push(&op.timers, procTimer[K, A]{at: ws.earlyAt, ws: ws})
		}
	}
}

// processSliding adds r to the live windows of its key that cover it, opens its own window
// over the key's records within diff before it, and keeps r for the windows of records up
// to diff after it that may still come.
func (op *WindowOperator[K, T, A, R]) processSliding(k K, r Record[T]) error {
	accepted, own := false, false
	for _, ws := range op.keys[k] {
		if ws.w.Start <= r.Time && r.Time < ws.w.End && !op.tooLate(ws.w) {
			op.add(ws, r)
			op.afterAdd(ws)
			accepted = true
			own = own || ws.w.End == r.Time+1
		}
	}
	w := TimeWindow{Start: r.Time - op.windowSize, End: r.Time + 1}
	if !own && !op.tooLate(w) {
		acc := op.agg.Zero()
		for _, b := range op.buffered[k] {
			if b.Time >= w.Start && b.Time <= r.Time {
				if b.Kind == Retract {
					acc = op.retract(acc, b.Value)
				} else {
					acc = op.agg.Add(acc, b.Value)
				}
			}
		}
		ws := op.open(k, w, acc)
		op.add(ws, r)
		op.afterAdd(ws)
		accepted = true
	}
	if !accepted {
		op.late(r)
		return nil
	}
	// r can join the window of a later record t ≤ r.ts+diff that is not too late.
	if op.buffered == nil {
		op.buffered = map[K][]Record[T]{}
	}
	op.buffered[k] = append(op.buffered[k], r)
	heap.Push(&op.expiry, expiry[K]{at: r.Time + op.windowSize + 1 + op.lateness, key: k})
	return nil
}

func (op *WindowOperator[K, T, A, R]) find(k K, w TimeWindow) *windowState[K, A] {
	for _, ws := range op.keys[k] {
		if ws.w == w {
			return ws
		}
	}
	return nil
}

func (op *WindowOperator[K, T, A, R]) open(k K, w TimeWindow, acc A) *windowState[K, A] {
	op.seq++
	ws := &windowState[K, A]{key: k, w: w, acc: acc, seq: op.seq}
	op.keys[k] = append(op.keys[k], ws)
	heap.Push(&op.due, ws)
	return ws
}

func (op *WindowOperator[K, T, A, R]) add(ws *windowState[K, A], r Record[T]) {
	if r.Kind == Retract {
		ws.acc = op.retract(ws.acc, r.Value)
	} else {
		ws.acc = op.agg.Add(ws.acc, r.Value)
	}
	ws.n++
	ws.dirty = true
}

func (op *WindowOperator[K, T, A, R]) fire(ws *windowState[K, A]) {
	res := WindowResult[K, R]{Key: ws.key, Start: ws.w.Start, End: ws.w.End, Value: op.agg.Result(ws.acc)}
	ts := ws.w.End - 1
	if ws.fired && op.opts.Changelog {
		op.out(Record[WindowResult[K, R]]{Value: ws.last.(WindowResult[K, R]), Time: ts, Kind: Retract})
	}
	op.out(Record[WindowResult[K, R]]{Value: res, Time: ts})
	ws.fired = true
	if op.opts.Changelog {
		ws.last = res
	}
	ws.n, ws.dirty = 0, false
	if op.opts.Trigger.IsPurging() {
		ws.acc = op.agg.Zero()
	}
}

// Advance moves the watermark to w: windows whose end ≤ w fire, in order of end (then of
// opening), and windows past their lateness are dropped.
func (op *WindowOperator[K, T, A, R]) Advance(w int64) {
	if w <= op.wm {
		return
	}
	op.wm = w
	for op.expiry.Len() > 0 && op.expiry[0].at <= w {
		e := heap.Pop(&op.expiry).(expiry[K])
		// A window [t−diff, t+1) with t ≥ b.ts is too late once t+1+lateness ≤ w.
		kept := keep(op.buffered[e.key], func(b Record[T]) bool { return b.Time+op.windowSize+1+op.lateness > w })
		if len(kept) == 0 {
			delete(op.buffered, e.key)
		} else {
			op.buffered[e.key] = kept
		}
	}
	for op.due.Len() > 0 {
		ws := op.due.items[0]
		if op.due.at(0) > w {
			return
		}
		if op.due.byEnd && !ws.onTime {
			op.fire(ws)
			ws.onTime = true
			if !op.tooLate(ws.w) {
				heap.Fix(&op.due, 0) // now due at end + lateness
				continue
			}
		}
		heap.Pop(&op.due)
		if ws.dirty && (!op.due.byEnd || w == MaxWatermark) {
			// Other triggers' windows: what has not fired yet fires before the state goes,
			// so that no record is lost.
			op.fire(ws)
		}
		op.drop(ws)
	}
}

// SetProcessingTime tells the operator the processing time (Unix ms), for the early
// firings and processing-time triggers that records schedule.
func (op *WindowOperator[K, T, A, R]) SetProcessingTime(now int64) { op.now = now }

// NextTimer returns when the next processing-time firing is due (Unix ms).
func (op *WindowOperator[K, T, A, R]) NextTimer() (int64, bool) {
	for op.timers.Len() > 0 {
		t := op.timers[0]
		if !t.ws.gone && t.ws.earlyAt == t.at {
			return t.at, true
		}
		heap.Pop(&op.timers) // stale: fired, rescheduled or dropped since
	}
	return 0, false
}

// FireTimers fires the processing-time firings due at now (Unix ms): windows of the
// processing-time trigger whose end has come, and early firings of windows that changed.
func (op *WindowOperator[K, T, A, R]) FireTimers(now int64) {
	op.now = max(op.now, now)
	for op.timers.Len() > 0 && op.timers[0].at <= now {
		t := heap.Pop(&op.timers).(procTimer[K, A])
		ws := t.ws
		if ws.gone || ws.earlyAt != t.at {
			continue
		}
		ws.earlyAt = 0
		if ws.dirty {
			op.fire(ws)
		}
		if op.opts.Trigger.EarlyFirings() > 0 && !ws.onTime {
			ws.earlyAt = now + op.opts.Trigger.EarlyFirings().Milliseconds()
			heap.Push(&op.timers, procTimer[K, A]{at: ws.earlyAt, ws: ws})
		}
	}
}

type procTimer[K comparable, A any] struct {
	at int64
	ws *windowState[K, A]
}

type procHeap[K comparable, A any] []procTimer[K, A]

func (h procHeap[K, A]) Len() int { return len(h) }
func (h procHeap[K, A]) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].ws.seq < h[j].ws.seq)
}
func (h procHeap[K, A]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *procHeap[K, A]) Push(x any)   { *h = append(*h, x.(procTimer[K, A])) }
func (h *procHeap[K, A]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (op *WindowOperator[K, T, A, R]) drop(ws *windowState[K, A]) {
	ws.gone = true
	list := op.keys[ws.key]
	for i, x := range list {
		if x == ws {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(op.keys, ws.key)
	} else {
		op.keys[ws.key] = list
	}
}

// WindowAssigner returns how many windows hold state, for inspection and tests.
func (op *WindowOperator[K, T, A, R]) Windows() int { return op.due.Len() }

// Get returns the accumulators of key's live windows, for inspection and tests.
func (op *WindowOperator[K, T, A, R]) Get(key K) map[TimeWindow]A {
	list := op.keys[key]
	if len(list) == 0 {
		return nil
	}
	out := make(map[TimeWindow]A, len(list))
	for _, ws := range list {
		out[ws.w] = ws.acc
	}
	return out
}

// Reset drops all windows.
func (op *WindowOperator[K, T, A, R]) Reset() {
	op.keys = map[K][]*windowState[K, A]{}
	op.due.items = nil
	op.timers = nil
	op.buffered = nil
	op.expiry = nil
}

// windowHeap orders windows by when they are next due: their end until they fire, then the
// end of their lateness, when their state is dropped.
type windowHeap[K comparable, A any] struct {
	items    []*windowState[K, A]
	lateness int64
	// byEnd says windows fire at their end (the event-time trigger); otherwise the heap
	// only drops them, at end + lateness.
	byEnd bool
}

func (h *windowHeap[K, A]) at(i int) int64 {
	end := h.items[i].w.End
	if h.items[i].onTime || !h.byEnd {
		if end > MaxWatermark-h.lateness {
			return MaxWatermark
		}
		return end + h.lateness
	}
	return end
}

func (h *windowHeap[K, A]) Len() int { return len(h.items) }
func (h *windowHeap[K, A]) Less(i, j int) bool {
	a, b := h.at(i), h.at(j)
	if a != b {
		return a < b
	}
	return h.items[i].seq < h.items[j].seq
}
func (h *windowHeap[K, A]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].heapAt = i
	h.items[j].heapAt = j
}
func (h *windowHeap[K, A]) Push(x any) {
	ws := x.(*windowState[K, A])
	ws.heapAt = len(h.items)
	h.items = append(h.items, ws)
}
func (h *windowHeap[K, A]) Pop() any {
	old := h.items
	ws := old[len(old)-1]
	old[len(old)-1] = nil
	h.items = old[:len(old)-1]
	ws.heapAt = -1
	return ws
}

// Collecting is the aggregator of ProcessWindow: it keeps every record of a window, in
// arrival order. It merges (for sessions) and cannot retract.
type Collecting[T any] struct{}

func (Collecting[T]) Zero() []T            { return nil }
func (Collecting[T]) Add(acc []T, v T) []T { return append(acc, v) }
func (Collecting[T]) Merge(a, b []T) []T   { return append(append([]T(nil), a...), b...) }
func (Collecting[T]) Result(acc []T) []T   { return acc }
