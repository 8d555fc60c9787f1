package actor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/stream"
)

// Env is what a task sees of its instance: who it is, its outputs, the clock, the
// dead-letter output. It belongs to one instance and is used from its goroutine only.
type Env struct {
	// ID is the instance's identity.
	ID Identity
	// Instances is how many instances the vertex has.
	Instances int
	// Config is the job's configuration, with defaults filled in.
	Config *Config
	// Metrics are the vertex's counters, shared by its instances.
	Metrics *StageMetrics
	// Position, when set (by the task of a source vertex whose split knows positions), says
	// where record i of a batch it read came from, for the dead letters of the stages fused
	// after it; ok is false for a batch that is not the source's.
	Position func(records any, i int) (source string, pos int64, ok bool)
	// UID numbers the instance among all of the job's, the same from run to run of one
	// plan: two-phase sinks name their transactions by it.
	UID int

	r *runner
	// deadLetters counts the job's dead letters, all instances; nil in a hand-made Env.
	deadLetters *atomic.Int64
}

// ErrTooManyDeadLetters fails a job that sent more dead letters than Config.MaxDeadLetters.
var ErrTooManyDeadLetters = errors.New("too many dead letters")

// Output returns the i-th channel group leaving this vertex.
func (e *Env) Output(i int) *OutputGroup { return e.r.outputs[i] }

// Outputs returns how many channel groups leave this vertex.
func (e *Env) Outputs() int { return len(e.r.outputs) }

// Blocked reports whether an output holds a full batch it has no credit to send: the task
// must stop taking input until credit comes.
func (e *Env) Blocked() bool { return e.r.stalled > 0 }

// Now returns the processing time.
func (e *Env) Now() time.Time { return e.Config.Clock.Now() }

// Context is the job's context: done when the job is cancelled.
func (e *Env) Context() context.Context { return e.r.drv.context() }

// CountOut counts n records this instance wrote to a sink (records sent on to other
// vertices are counted as they go).
func (e *Env) CountOut(n int) {
	e.Metrics.Out.Add(int64(n))
	e.Metrics.instance(e.ID.Index).out.Add(int64(n))
}

// CountLate counts a record too late for every window it belongs to.
func (e *Env) CountLate() {
	e.Metrics.Late.Add(1)
	e.Metrics.instance(e.ID.Index).late.Add(1)
}

// DeadLetter handles d, a record a user function failed on (or that cannot be handled), as
// the ErrorPolicy says: under Skip and FailJob it goes to the dead-letter output, and is
// counted (past Config.MaxDeadLetters the job fails), and FailJob fails the job; under
// RestartStage the run ends with a *RestartError instead, and the record, read again after
// the restart, is no dead letter (yet).
func (e *Env) DeadLetter(d stream.DeadLetter) {
	if e.Config.ErrorPolicy == RestartStage {
		e.Metrics.Restarts.Add(1)
		e.Config.Logger.Warn("restarting from the last completed checkpoint", "identity", e.ID.String(), "stage", d.Stage, "reason", d.Reason)
		e.r.drv.fail(&RestartError{Identity: e.ID, Stage: d.Stage, Reason: d.Reason})
		return
	}
	e.Metrics.DeadLetters.Add(1)
	e.Metrics.instance(e.ID.Index).deadLetters.Add(1)
	if e.Config.DeadLetters != nil {
		e.Config.DeadLetters(d)
	} else {
		e.Config.Logger.Warn("dead letter", "identity", e.ID.String(), "stage", d.Stage, "reason", d.Reason, "position", d.Position)
	}
	if e.deadLetters != nil {
		if n := e.deadLetters.Add(1); e.Config.MaxDeadLetters > 0 && n > e.Config.MaxDeadLetters {
			e.r.drv.fail(fmt.Errorf("%w: more than %d, the limit (graph.MaxDeadLetters, -max-dead-letters); the last: %s",
				ErrTooManyDeadLetters, e.Config.MaxDeadLetters, d))
			return
		}
	}
	if e.Config.ErrorPolicy == FailJob {
		e.r.drv.fail(fmt.Errorf("stage %s (%s): %s", d.Stage, e.ID, d.Reason))
	}
}

// Fail fails the job with err, whatever the ErrorPolicy: for failures of the engine and of
// state stores, which no policy may turn into a dead letter (the state would be wrong from
// then on). The first failure is what Run returns.
func (e *Env) Fail(err error) { e.r.drv.fail(fmt.Errorf("%s: %w", e.ID, err)) }

// OutputGroup is the set of channels from one instance to the instances of one downstream
// vertex. A Writer fills its per-destination buffers; the group owns the credits.
type OutputGroup struct {
	r            *runner
	index        int
	port         int
	partitioning Partitioning
	dests        []*pa.PID
	credits      []int
	stalled      []bool
	flushWanted  []bool
	buffers      buffers
	// codec encodes batches for destinations on other nodes (remote[dest]).
	codec  RecordsCodec
	remote []bool
	// holders keep records back from the group's writer, combined (see Holder).
	holders []Holder
}

// Holder keeps records back from an output group's Writer to send them later, combined: the
// partial aggregates of local aggregation, each made of many records. It folds records in
// as they come and writes what it holds into the writer when it has gathered enough, and
// before it passes a watermark on. The runner drains it whenever everything written so far
// must go out: before a checkpoint barrier and at the end of input; and while it holds
// records, linger ticks come every Config.Linger, at which it drains what has waited long
// enough. Drain and Linger run as the instance's work: they may wait for credit in the
// middle, as any write does.
type Holder interface {
	// Holding reports whether it holds anything.
	Holding() bool
	// Drain writes everything it holds into the writer.
	Drain()
	// Linger drains what it holds if that has waited long enough at now.
	Linger(now time.Time)
}

// Hold registers h, which writes into the group's writer, with the group (see Holder).
func (g *OutputGroup) Hold(h Holder) { g.holders = append(g.holders, h) }

// holding reports whether a holder of the group holds records back.
func (g *OutputGroup) holding() bool {
	for _, h := range g.holders {
		if h.Holding() {
			return true
		}
	}
	return false
}

// buffers is the typed side of an output group: a Writer.
type buffers interface {
	take(dest int) (records any, n int, marks []Mark)
	size(dest int) int
	// behind reports whether dest has not been told the writer's latest watermark.
	behind(dest int) bool
	// barrier puts checkpoint barrier id at the end of dest's buffer.
	barrier(dest int, id int64)
	// hasMarks reports whether dest's buffer holds marks (a barrier waits there).
	hasMarks(dest int) bool
	recycle(dest int, records any)
}

// Partitioning returns how the group spreads records.
func (g *OutputGroup) Partitioning() Partitioning { return g.partitioning }

// Destinations returns how many receiver instances the group has.
func (g *OutputGroup) Destinations() int { return len(g.dests) }

// full is called by the writer when dest's buffer has reached the batch size.
func (g *OutputGroup) full(dest int) {
	if g.credits[dest] > 0 {
		g.send(dest)
		return
	}
	if !g.stalled[dest] {
		g.stalled[dest] = true
		g.r.stall()
	}
}

func (g *OutputGroup) send(dest int) {
	recs, n, marks := g.buffers.take(dest)
	if n == 0 && len(marks) == 0 {
		return
	}
	g.credits[dest]--
	g.flushWanted[dest] = false
	g.r.env.Metrics.Out.Add(int64(n))
	g.r.env.Metrics.Batches.Add(1)
	im := g.r.instanceMetrics()
	im.out.Add(int64(n))
	im.inFlight.Add(1)
	b := &Batch{Port: g.port, Records: recs, N: n, Marks: marks, From: g.r.uid, Sender: g.r.self, Group: g.index, Dest: dest}
	if !g.remote[dest] {
		g.r.drv.send(g.dests[dest], b)
		return
	}
	wire, err := encodeBatch(b, g.codec)
	if err != nil {
		g.r.drv.fail(fmt.Errorf("%s: send a batch to %s: %w", g.r.env.ID, g.dests[dest], err))
		return
	}
	g.buffers.recycle(dest, recs) // encoded: the slice is free again
	g.r.drv.send(g.dests[dest], wire)
}

// credit handles a credit returned by dest, with the batch's slice to reuse.
func (g *OutputGroup) credit(dest int, recs any) {
	g.credits[dest]++
	g.r.instanceMetrics().inFlight.Add(-1)
	if recs != nil {
		g.buffers.recycle(dest, recs)
	}
	n := g.buffers.size(dest)
	if n >= g.r.env.Config.BatchSize || (g.flushWanted[dest] && (n > 0 || g.buffers.behind(dest) || g.buffers.hasMarks(dest))) {
		g.send(dest)
	}
	if g.stalled[dest] && g.buffers.size(dest) < g.r.env.Config.BatchSize {
		g.stalled[dest] = false
		g.r.unstall()
	}
}

// flush sends every non-empty buffer that has credit (with the marks it holds) and marks the
// others to go as soon as credit comes. It reports whether every buffer is empty now.
func (g *OutputGroup) flush() (empty bool) {
	empty = true
	for d := range g.dests {
		if g.buffers.size(d) == 0 && !g.buffers.hasMarks(d) {
			continue
		}
		if g.credits[d] > 0 {
			g.send(d)
		}
		if g.buffers.size(d) > 0 || g.buffers.hasMarks(d) {
			g.flushWanted[d] = true
			empty = false
		}
	}
	return empty
}

// flushWatermarks sends the writer's watermark to the destinations that hold no records and
// have not been told it; the others get it with their next batch.
func (g *OutputGroup) flushWatermarks() {
	for d := range g.dests {
		if g.buffers.size(d) == 0 && g.buffers.behind(d) {
			if g.credits[d] > 0 {
				g.send(d)
			} else {
				g.flushWanted[d] = true
			}
		}
	}
}

// barrier sends checkpoint barrier id to every destination, behind what is buffered for it,
// as soon as credit allows.
func (g *OutputGroup) barrier(id int64) {
	for d := range g.dests {
		g.buffers.barrier(d, id)
		if g.credits[d] > 0 {
			g.send(d)
		} else {
			g.flushWanted[d] = true
		}
	}
}

func (g *OutputGroup) pending() bool {
	if g.holding() {
		return true
	}
	for d := range g.dests {
		if g.buffers.size(d) > 0 {
			return true
		}
	}
	return false
}

// firstBuffer is the capacity of a destination's first buffer; append grows it to the batch
// size when the destination gets that many.
const firstBuffer = 64

// Writer buffers records of type T for the destinations of an output group.
type Writer[T any] struct {
	g     *OutputGroup
	bufs  [][]stream.Record[T]
	free  [][]stream.Record[T] // slices handed back with credits, for reuse
	batch int
	dest  func(stream.Record[T]) int
	next  int

	// wm is the writer's watermark; told[d] the last one written for dest d, and marks[d]
	// the marks in d's buffer. A record for d carries a mark only when the watermark moved
	// since d's last record, so steady streams carry almost none.
	wm    int64
	told  []int64
	marks [][]Mark
}

// NewWriter returns the writer of output group g. For Hash partitioning, dest returns the
// key group of a record (in [0, g.Destinations())); other partitionings ignore it.
func NewWriter[T any](g *OutputGroup, dest func(stream.Record[T]) int) *Writer[T] {
	w := &Writer[T]{g: g, bufs: make([][]stream.Record[T], len(g.dests)), batch: g.r.env.Config.BatchSize, dest: dest,
		wm: MinWatermark, told: make([]int64, len(g.dests)), marks: make([][]Mark, len(g.dests))}
	for d := range w.told {
		w.told[d] = MinWatermark
	}
	// Senders start round-robin at different receivers, so they do not all crowd the first.
	w.next = g.r.env.ID.Index % len(g.dests)
	g.buffers = w
	return w
}

// Write adds r to the buffer of its destination, sending the buffer when it is full and
// credit allows. A full buffer without credit stalls the instance (Env.Blocked reports it,
// and tasks stop taking input); a record for a destination whose buffer is full and stalled
// waits, its work suspended, until credit has come back and the buffer has gone. So no
// buffer holds more than a batch. (Rebalance fills another receiver's buffer meanwhile, and
// waits only when every one is full.)
func (w *Writer[T]) Write(r stream.Record[T]) {
	if w.g.partitioning == Hash {
		w.append(w.dest(r), r)
		return
	}
	for len(w.bufs[w.next]) >= w.batch {
		// The current receiver's batch waits for credit: fill another one's meanwhile.
		moved := false
		for k := 1; k < len(w.bufs); k++ {
			if d := (w.next + k) % len(w.bufs); len(w.bufs[d]) < w.batch {
				w.next, moved = d, true
				break
			}
		}
		if moved || !w.g.r.waitForCredit() {
			break
		}
	}
	w.append(w.next, r)
}

// WriteAll writes every record of recs, as Write does: where a destination's buffer is full
// and has no credit, the work waits for credit in the middle of recs.
func (w *Writer[T]) WriteAll(recs []stream.Record[T]) {
	if w.g.partitioning != Hash {
		for i := range recs {
			w.Write(recs[i])
		}
		return
	}
	for i := range recs {
		d := w.dest(recs[i])
		// The fast path, inlined: room left, the record does not fill the buffer, and the
		// destination knows the watermark.
		if b := w.bufs[d]; len(b)+1 < cap(b) && w.told[d] == w.wm {
			w.bufs[d] = append(b, recs[i])
			continue
		}
		w.append(d, recs[i])
	}
}

// append is the whole path: the wait for a full buffer to go, a fresh buffer when there is
// none, and the send when full.
func (w *Writer[T]) append(d int, r stream.Record[T]) {
	for len(w.bufs[d]) >= w.batch {
		// Full, and no credit to send it: wait. Outside the instance's work (nothing
		// emits there) there is no waiting, and the buffer grows.
		if !w.g.r.waitForCredit() {
			break
		}
	}
	if w.told[d] != w.wm {
		w.marks[d] = append(w.marks[d], Mark{Pos: len(w.bufs[d]), Watermark: w.wm})
		w.told[d] = w.wm
	}
	b := w.bufs[d]
	if b == nil {
		if n := len(w.free); n > 0 {
			b, w.free[n-1] = w.free[n-1], nil
			w.free = w.free[:n-1]
		} else {
			// Small at first, grown by append up to the batch: many destinations of a
			// hash exchange never fill a batch (partial aggregates, few keys per group),
			// and a batch's worth for each would be most of a sender's memory.
			b = make([]stream.Record[T], 0, min(w.batch, firstBuffer))
		}
	}
	if len(b) == cap(b) && cap(b) < w.batch {
		// Grown here, never past the batch: the fast path in WriteAll fills a buffer up to
		// its capacity without looking at the batch size, so a buffer larger than the batch
		// would pass it unsent, and then wait for a credit that nothing spends.
		nb := make([]stream.Record[T], len(b), min(2*cap(b)+firstBuffer, w.batch))
		copy(nb, b)
		b = nb
	}
	b = append(b, r)
	w.bufs[d] = b
	if len(b) >= w.batch {
		w.g.full(d)
	}
}

// Watermark moves the writer's watermark to wm; destinations learn it with their next batch,
// or, those with nothing to send, within Config.WatermarkInterval.
func (w *Writer[T]) Watermark(wm int64) {
	if wm > w.wm {
		w.wm = wm
		w.g.r.wmMoved = true
	}
}

func (w *Writer[T]) take(d int) (any, int, []Mark) {
	b := w.bufs[d]
	w.bufs[d] = nil
	marks := w.marks[d]
	w.marks[d] = nil
	if w.told[d] != w.wm {
		marks = append(marks, Mark{Pos: len(b), Watermark: w.wm})
		w.told[d] = w.wm
	}
	if w.g.partitioning == Rebalance && d == w.next {
		w.next = (d + 1) % len(w.bufs)
	}
	return b, len(b), marks
}

func (w *Writer[T]) size(d int) int { return len(w.bufs[d]) }

func (w *Writer[T]) behind(d int) bool { return w.told[d] != w.wm }

func (w *Writer[T]) hasMarks(d int) bool { return len(w.marks[d]) > 0 }

func (w *Writer[T]) barrier(d int, id int64) {
	w.marks[d] = append(w.marks[d], Mark{Pos: len(w.bufs[d]), Watermark: w.wm, Barrier: id})
	w.told[d] = w.wm
}

// recycle keeps a slice that came back with a credit. At most one per batch in flight comes
// back, so the free list is bounded by destinations × credits.
func (w *Writer[T]) recycle(_ int, records any) {
	b, ok := records.([]stream.Record[T])
	if !ok || cap(b) == 0 || cap(b) > w.batch { // larger would pass the fast path's check unsent
		return
	}
	clear(b)
	w.free = append(w.free, b[:0])
}
