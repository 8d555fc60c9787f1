package actor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
)

// ErrWait is returned by a source task's Read when it has nothing to read until something
// outside wakes it with another pull (the testing kit's input does this).
var ErrWait = errors.New("source has nothing to read until woken")

// channelState is what an instance knows of one input channel: its watermark and, with an
// IdleTimeout, when it last sent.
type channelState struct {
	from  int
	port  int
	wm    int64
	hasWM bool
	seen  time.Time
}

// driver is what an instance needs of whatever runs it: Proto.Actor, or the synchronous
// test driver.
type driver interface {
	send(to *pa.PID, msg any)
	context() context.Context
	fail(err error)
	finished(r *runner)
	// ack reports an instance's part of checkpoint id: its state (nil when it had
	// finished, or holds none).
	ack(id int64, r *runner, state []byte, err error)
}

// chanKey names an input channel: a sender and the port it feeds.
type chanKey struct{ from, port int }

// alignment is a checkpoint barrier an instance is waiting for on some of its channels:
// channels that have delivered it are held until all have (Flink's aligned checkpoints).
type alignment struct {
	id      int64
	arrived map[chanKey]bool
	since   time.Time
}

// runner is the engine of one instance: batches in, credits, end of stream, timers, linger.
// Both drivers feed it the same messages, one at a time.
type runner struct {
	drv     driver
	self    *pa.PID
	vertex  *Vertex
	env     *Env
	task    Task
	outputs []*OutputGroup
	// inputs holds the codec of each input port, for batches from other nodes, and spare
	// the record slices of such batches once handled, per port, to decode the next into.
	inputs []RecordsCodec
	spare  [][]any

	// queue holds batches received and not yet processed; bounded by the credits granted.
	queue []*Batch
	// eosLeft counts the EndOfStream messages still expected over all ports.
	eosLeft int
	// uid identifies this instance among all of the job's, as a sender.
	uid int
	// channels is how many input channels the instance has; chans holds what it knows of
	// each that has sent something, and wm their minimum once all have a watermark
	// (MinWatermark before).
	channels int
	chans    []channelState
	wm       int64
	// With an IdleTimeout: when each channel last sent, when the instance started, and the
	// periodic check that lets idle channels go.
	started   time.Time
	idleArmed bool
	idleStop  func() bool

	stalled      int
	stalledSince time.Time

	pullQueued  bool
	sourceEOF   bool
	finishing   bool
	done        bool
	lingerArmed bool
	lingerStop  func() bool
	// align is the barrier being aligned; lastBarrier the last one passed on; ended the
	// channels that have ended (they count as having delivered every barrier).
	align       *alignment
	lastBarrier int64
	final       []byte // the state it finished with
	ended       map[chanKey]bool

	// completed is the newest checkpoint the instance was told is complete (queries).
	completed int64

	// wmMoved says a writer's watermark moved since the last flush of watermarks, which
	// wmStop will do.
	wmMoved   bool
	wmStop    func() bool
	timerStop func() bool
	timerAt   time.Time

	// em runs the instance's work as a coroutine that waits for credit (emission.go).
	em emission
}

func (r *runner) receive(msg any) {
	if r.drv.context().Err() != nil {
		// The run has failed or is being stopped: nothing more is done, and above all no
		// snapshot is taken after a failure (a restart must not restore one).
		return
	}
	if t, ok := msg.(triggerMsg); ok && r.done {
		r.drv.ack(t.id, r, r.final, nil) // finished: its state as it ended
		return
	}
	if r.done {
		if _, ok := msg.(*Credit); ok {
			r.instanceMetrics().inFlight.Add(-1) // the batch was taken: the credit is free
		}
		return
	}
	switch m := msg.(type) {
	case triggerMsg:
		// A source starts the barrier; so does a stage whose inputs have all ended (no
		// barrier will come to it). Others get it in-band.
		if r.vertex.Source || r.eosLeft == 0 {
			r.passBarrier(m.id)
			r.afterWork()
		}
	case completeMsg:
		r.completed = max(r.completed, m.id)
		r.task.CheckpointComplete(m.id)
	case startMsg:
		r.started = r.env.Now()
		if r.vertex.Source {
			r.schedulePull()
		} else if r.eosLeft == 0 {
			r.startFinish()
		}
	case pullMsg:
		r.pullQueued = false
		if !r.sourceEOF {
			r.pull()
		}
	case *Batch:
		r.env.Metrics.In.Add(int64(m.N))
		r.instanceMetrics().in.Add(int64(m.N))
		if r.env.Config.IdleTimeout > 0 {
			r.channel(m.From, m.Port).seen = r.env.Now()
		}
		r.queue = append(r.queue, m)
		r.env.Metrics.noteQueued(len(r.queue))
		r.drain()
	case *Credit:
		r.outputs[m.Group].credit(m.Dest, m.Records)
	case *EndOfStream:
		// In the queue, behind the channel's batches that wait there: the end of a channel
		// is its watermark moving to the end of time, which must not overtake its records.
		r.queue = append(r.queue, &Batch{Port: m.Port, From: m.From, eos: true})
		r.drain()
	case flushTickMsg:
		r.lingerArmed = false
		if m.all {
			r.drainHeld()
		} else if r.holding() {
			now := r.env.Now()
			for _, g := range r.outputs {
				for _, h := range g.holders {
					if h.Holding() {
						h.Linger(now)
					}
				}
			}
			defer r.afterWork() // ticks go on while a holder holds records
		}
		for _, g := range r.outputs {
			g.flush()
		}
	case wmTickMsg:
		r.wmStop = nil
		r.wmMoved = false
		for _, g := range r.outputs {
			g.flushWatermarks()
		}
		r.afterWork()
	case idleTickMsg:
		r.idleArmed = false
		r.lowerWatermark()
		r.afterWork()
	case timerTickMsg:
		r.timerStop = nil
		r.task.FireTimers(r.env.Now())
		r.task.EndBatch()
		r.afterWork()
	default:
		r.drv.fail(fmt.Errorf("%s: unexpected message %T", r.env.ID, msg))
	}
	if r.finishing && !r.done {
		r.tryFinish()
	}
}

func (r *runner) schedulePull() {
	if r.pullQueued || r.finishing || r.stalled > 0 {
		return
	}
	r.pullQueued = true
	r.drv.send(r.self, pullMsg{})
}

func (r *runner) pull() {
	if r.finishing || r.stalled > 0 {
		return
	}
	n, err := r.task.Read(r.drv.context(), r.env.Config.BatchSize)
	r.env.Metrics.In.Add(int64(n))
	r.instanceMetrics().in.Add(int64(n))
	r.task.EndBatch()
	switch {
	case errors.Is(err, io.EOF):
		r.sourceEOF = true
		r.startFinish()
		return
	case errors.Is(err, ErrWait):
		r.afterWork()
		return
	case err != nil:
		if r.drv.context().Err() == nil {
			r.drv.fail(fmt.Errorf("read source split %s: %w", r.env.ID, err))
		}
		return
	}
	r.afterWork()
	r.schedulePull()
}

func (r *runner) drain() {
	// Batches are taken in arrival order, but for those of channels held by a barrier
	// alignment, which wait (they are bounded by the credits granted).
	for i := 0; i < len(r.queue) && r.stalled == 0; {
		b := r.queue[i]
		key := chanKey{b.From, b.Port}
		if r.held(key) {
			i++
			continue
		}
		if b.eos {
			r.remove(i)
			r.eosLeft--
			if r.ended == nil {
				r.ended = map[chanKey]bool{}
			}
			r.ended[key] = true
			r.channelWatermark(b.From, b.Port, MaxWatermark)
			r.alignmentDone()
			i = 0
			continue
		}
		if !r.process(b) {
			if r.stalled > 0 {
				break
			}
			i = 0 // held at a barrier: go on with the other channels
			continue
		}
		r.remove(i)
		if b.Sender != nil && b.Sender.Address != r.self.Address && b.Records != nil {
			// Decoded here: the slice stays here, for the next batch from another node.
			r.putSpare(b.Port, b.Records)
			r.drv.send(b.Sender, &Credit{Group: b.Group, Dest: b.Dest})
		} else {
			r.drv.send(b.Sender, &Credit{Group: b.Group, Dest: b.Dest, Records: b.Records})
		}
		r.task.EndBatch()
		i = 0
	}
	r.instanceMetrics().queued.Store(int64(len(r.queue)))
	if len(r.queue) == 0 && r.eosLeft == 0 && !r.vertex.Source {
		r.startFinish()
		return
	}
	r.afterWork()
}

// instanceMetrics returns the instance's own counters.
func (r *runner) instanceMetrics() *InstanceMetrics { return r.env.Metrics.instance(r.env.ID.Index) }

func (r *runner) remove(i int) {
	copy(r.queue[i:], r.queue[i+1:])
	r.queue[len(r.queue)-1] = nil
	r.queue = r.queue[:len(r.queue)-1]
}

// held reports whether channel key has delivered the barrier being aligned.
func (r *runner) held(key chanKey) bool { return r.align != nil && r.align.arrived[key] }

// barrierFrom handles checkpoint barrier id from channel key: the channel is held until
// every channel has delivered it, then the instance takes its snapshot and passes the
// barrier on.
func (r *runner) barrierFrom(key chanKey, id int64) {
	if id <= r.lastBarrier {
		return
	}
	if r.align == nil || r.align.id < id {
		r.align = &alignment{id: id, arrived: map[chanKey]bool{}, since: r.env.Now()}
	}
	r.align.arrived[key] = true
	r.alignmentDone()
}

// alignmentDone completes the alignment once every channel has delivered the barrier or
// ended.
func (r *runner) alignmentDone() {
	a := r.align
	if a == nil {
		return
	}
	n := len(a.arrived)
	for k := range r.ended {
		if !a.arrived[k] {
			n++
		}
	}
	if n < r.channels {
		return
	}
	r.align = nil
	r.env.Metrics.AlignmentNanos.Add(int64(r.env.Now().Sub(a.since)))
	r.passBarrier(a.id)
}

// passBarrier takes the instance's snapshot for checkpoint id, reports it, and sends the
// barrier on behind everything emitted before it.
func (r *runner) passBarrier(id int64) {
	if id <= r.lastBarrier {
		return
	}
	r.lastBarrier = id
	r.task.EndBatch() // what was emitted before the barrier goes out before it
	r.drainHeld()
	state, err := r.task.Snapshot(id)
	r.drv.ack(id, r, state, err)
	for _, g := range r.outputs {
		g.barrier(id)
	}
}

// process handles batch b, its records and its marks in order, until the end, a blocked
// output, or a barrier that holds its channel; it reports whether b is done.
func (r *runner) process(b *Batch) bool {
	for r.stalled == 0 {
		end := b.N
		if b.mark < len(b.Marks) {
			end = b.Marks[b.mark].Pos
		}
		if b.start < end {
			b.start = r.task.Process(b.Port, b.Records, b.start, end)
			if b.start < end {
				return false
			}
		}
		if b.mark == len(b.Marks) {
			return true
		}
		m := b.Marks[b.mark]
		r.channelWatermark(b.From, b.Port, m.Watermark)
		b.mark++
		if m.Barrier > 0 {
			key := chanKey{b.From, b.Port}
			r.barrierFrom(key, m.Barrier)
			if r.held(key) {
				return b.start == b.N && b.mark == len(b.Marks)
			}
		}
	}
	return false
}

// channelWatermark records channel from's watermark, and when the minimum over all channels
// advances, hands it to the task.
func (r *runner) channelWatermark(from, port int, w int64) {
	ch := r.channel(from, port)
	if ch.hasWM && ch.wm >= w {
		return
	}
	ch.wm, ch.hasWM = w, true
	r.lowerWatermark()
}

// channel returns the state of the input channel from sender from on port, adding it on
// first sight. A sender that feeds two ports (both inputs of a join from one vertex) has a
// channel on each. An instance has a handful of channels, so a slice beats a map.
func (r *runner) channel(from, port int) *channelState {
	for i := range r.chans {
		if r.chans[i].from == from && r.chans[i].port == port {
			return &r.chans[i]
		}
	}
	r.chans = append(r.chans, channelState{from: from, port: port})
	return &r.chans[len(r.chans)-1]
}

// lowerWatermark recomputes the minimum over the input channels, leaving out those idle
// past IdleTimeout (unless all are), and hands it to the task when it has advanced.
func (r *runner) lowerWatermark() {
	idle := r.env.Config.IdleTimeout
	var now time.Time
	if idle > 0 {
		now = r.env.Now()
	}
	low, counted, known := MaxWatermark, 0, 0
	for i := range r.chans {
		ch := &r.chans[i]
		active := idle == 0 || ch.wm == MaxWatermark || now.Sub(ch.seen) < idle
		if !ch.hasWM {
			if active && idle > 0 {
				return // awake, and no watermark yet: it holds event time back
			}
			continue
		}
		known++
		if active {
			low = min(low, ch.wm)
			counted++
		}
	}
	if known < r.channels && (idle == 0 || now.Sub(r.started) < idle) {
		return // a channel that has said nothing yet holds event time back
	}
	if counted == 0 {
		return
	}
	if low > r.wm {
		r.wm = low
		r.env.Metrics.noteWatermark(r.env.ID.Index, low)
		r.task.Watermark(low)
	}
}

// afterWork arms the linger and timer wake-ups that the work just done calls for.
func (r *runner) afterWork() {
	if r.wmMoved && r.wmStop == nil && !r.finishing {
		// Destinations with records pending learn the watermark with them; the others get
		// it in a mark-only batch, at most once per interval: with key groups on both sides
		// of a channel, a batch per destination per move would flood the mailboxes.
		r.wmStop = r.after(r.env.Config.WatermarkInterval, wmTickMsg{})
	}
	if !r.lingerArmed && !r.finishing {
		for _, g := range r.outputs {
			if g.pending() {
				r.lingerArmed = true
				r.lingerStop = r.after(r.env.Config.Linger, flushTickMsg{})
				break
			}
		}
	}
	if idle := r.env.Config.IdleTimeout; idle > 0 && !r.idleArmed && !r.finishing && r.channels > 0 {
		r.idleArmed = true
		r.idleStop = r.after(idle, idleTickMsg{})
	}
	if at, ok := r.task.NextTimer(); ok && (r.timerStop == nil || at.Before(r.timerAt)) {
		if r.timerStop != nil {
			r.timerStop()
		}
		r.timerAt = at
		r.timerStop = r.after(at.Sub(r.env.Now()), timerTickMsg{})
	}
}

func (r *runner) after(d time.Duration, msg any) func() bool {
	self := r.self
	return r.env.Config.Clock.AfterFunc(d, func() { r.drv.send(self, msg) })
}

// drainHeld writes what the outputs' holders keep back into their writers (see Holder). It
// runs as the instance's work, which may wait for credit.
func (r *runner) drainHeld() {
	for _, g := range r.outputs {
		for _, h := range g.holders {
			if h.Holding() {
				h.Drain()
			}
		}
	}
}

// holding reports whether an output's holder keeps records back.
func (r *runner) holding() bool {
	for _, g := range r.outputs {
		if g.holding() {
			return true
		}
	}
	return false
}

func (r *runner) stall() {
	if r.stalled == 0 {
		r.stalledSince = r.env.Now()
		r.instanceMetrics().stalledSince.Store(r.stalledSince.UnixNano())
	}
	r.stalled++
}

func (r *runner) unstall() {
	r.stalled--
	if r.stalled > 0 {
		return
	}
	stalled := int64(r.env.Now().Sub(r.stalledSince))
	r.env.Metrics.BackpressureNanos.Add(stalled)
	im := r.instanceMetrics()
	im.backpressure.Add(stalled)
	im.stalledSince.Store(0)
	if r.em.suspended {
		r.em.woken = true // once the suspended work is done
		return
	}
	r.wake()
}

// wake goes on taking input once no output is stalled any more.
func (r *runner) wake() {
	if r.stalled > 0 || r.finishing {
		return
	}
	if r.vertex.Source {
		r.schedulePull()
	} else {
		r.drain()
	}
}

// startFinish runs once all input has been handled: final results, then the last flush.
// Processing-time timers still pending fire now, so that a bounded job's results that wait
// on a timer are not lost.
func (r *runner) startFinish() {
	if r.finishing {
		return
	}
	r.finishing = true
	r.task.EndInput()
	r.task.FireTimers(time.Unix(0, math.MaxInt64))
	r.task.EndBatch()
	r.drainHeld()
	r.tryFinish()
}

// tryFinish sends what is buffered, and once every buffer is empty sends EndOfStream
// downstream and reports the instance finished.
func (r *runner) tryFinish() {
	empty := true
	for _, g := range r.outputs {
		if !g.flush() {
			empty = false
		}
	}
	if !empty {
		return
	}
	for _, g := range r.outputs {
		for _, d := range g.dests {
			r.drv.send(d, &EndOfStream{Port: g.port, From: r.uid})
		}
	}
	r.done = true
	r.stopTimers()
	// The state it ended with goes into later checkpoints (a source: its final position).
	// With checkpoints, it is the state of the final checkpoint, which two-phase sinks
	// pre-commit their last transaction to.
	id := int64(0)
	if r.env.Config.Checkpoints != nil {
		id = FinalCheckpoint
	}
	st, err := r.task.Snapshot(id)
	if err != nil {
		r.drv.fail(fmt.Errorf("final snapshot of %s: %w", r.env.ID, err))
	}
	r.final = st
	if err := r.task.Close(); err != nil {
		r.drv.fail(fmt.Errorf("close %s: %w", r.env.ID, err))
	}
	r.drv.finished(r)
}

func (r *runner) stopTimers() {
	if r.wmStop != nil {
		r.wmStop()
		r.wmStop = nil
	}
	if r.idleStop != nil {
		r.idleStop()
		r.idleStop = nil
	}
	if r.lingerStop != nil {
		r.lingerStop()
		r.lingerStop = nil
	}
	if r.timerStop != nil {
		r.timerStop()
		r.timerStop = nil
	}
}

// maxSpare bounds the record slices an instance keeps per port for batches from other nodes:
// a few suffice, since each batch in flight is one credit.
const maxSpare = 8

func (r *runner) putSpare(port int, recs any) {
	for len(r.spare) <= port {
		r.spare = append(r.spare, nil)
	}
	if len(r.spare[port]) < maxSpare {
		r.spare[port] = append(r.spare[port], recs)
	}
}

// takeSpare returns a record slice kept for port, or nil.
func (r *runner) takeSpare(port int) any {
	if port >= len(r.spare) || len(r.spare[port]) == 0 {
		return nil
	}
	s := r.spare[port]
	recs := s[len(s)-1]
	s[len(s)-1] = nil
	r.spare[port] = s[:len(s)-1]
	return recs
}
