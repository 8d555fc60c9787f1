package actor

import (
	"context"
	"errors"
	"fmt"

	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/stream"
)

// SyncDriver runs a job's instances on the caller's goroutine, delivering messages in FIFO
// order, deterministically: the driver of the testing kit. With a stream.ManualClock in the
// config, linger and timers move only when the test advances the clock.
type SyncDriver struct {
	job     *Job
	ctx     context.Context
	cancel  context.CancelFunc
	runners map[string]*runner
	byVert  [][]*runner
	queue   []envelope
	err     error
	left    int
	ended   bool
	acks    map[int64]*Checkpoint
	acked   map[int64]int
	ackErr  error
}

func (d *SyncDriver) ack(id int64, r *runner, state []byte, err error) {
	if d.acks == nil {
		d.acks, d.acked = map[int64]*Checkpoint{}, map[int64]int{}
	}
	cp := d.acks[id]
	if cp == nil {
		cp = &Checkpoint{ID: id, States: map[string][]byte{}, Finished: map[string]bool{}}
		d.acks[id] = cp
	}
	if r.done {
		cp.Finished[r.env.ID.String()] = true
	}
	if state != nil {
		cp.States[r.env.ID.String()] = state
	}
	if err != nil && d.ackErr == nil {
		d.ackErr = err
	}
	d.acked[id]++
}

// TriggerCheckpoint queues the start of checkpoint id at every instance (behind what is
// queued already), without running.
func (d *SyncDriver) TriggerCheckpoint(id int64) {
	for _, rs := range d.byVert {
		for _, r := range rs {
			d.send(r.self, triggerMsg{id})
		}
	}
}

// Checkpoint returns checkpoint id once every instance has acknowledged it; otherwise (its
// barriers still on their way) it says how many have.
func (d *SyncDriver) Checkpoint(id int64) (Checkpoint, error) {
	total := 0
	for _, rs := range d.byVert {
		total += len(rs)
	}
	if d.acked[id] < total {
		return Checkpoint{}, fmt.Errorf("checkpoint %d: %d of %d instances acknowledged", id, d.acked[id], total)
	}
	if d.ackErr != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint %d: %w", id, d.ackErr)
	}
	return *d.acks[id], nil
}

// CompleteCheckpoint tells every instance that checkpoint id is complete, and runs.
func (d *SyncDriver) CompleteCheckpoint(id int64) error {
	for _, rs := range d.byVert {
		for _, r := range rs {
			d.send(r.self, completeMsg{id})
		}
	}
	return d.Run()
}

type envelope struct {
	to  *pa.PID
	msg any
}

// NewSyncDriver instantiates every vertex of job on one goroutine. Nothing runs until Start.
// The job's clock must be a stream.ManualClock: a real clock would call back from its own
// goroutines.
func NewSyncDriver(job *Job) (*SyncDriver, error) {
	if _, ok := job.cfg.Clock.(*stream.ManualClock); !ok {
		return nil, fmt.Errorf("sync driver: the job's clock is a %T; it must be a *stream.ManualClock", job.cfg.Clock)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &SyncDriver{job: job, ctx: ctx, cancel: cancel, runners: map[string]*runner{}, byVert: make([][]*runner, len(job.plan.Vertices))}
	runners, err := job.instantiate(d, func(id Identity) *pa.PID { return pa.NewPID("sync", id.String()) })
	if err != nil {
		cancel()
		return nil, err
	}
	for _, r := range runners {
		d.runners[r.self.Id] = r
		vi := indexOf(job.plan.Vertices, r.vertex)
		d.byVert[vi] = append(d.byVert[vi], r)
	}
	d.left = len(runners)
	return d, nil
}

func indexOf(vs []*Vertex, v *Vertex) int {
	for i := range vs {
		if vs[i] == v {
			return i
		}
	}
	return -1
}

// Start sends every instance its start message and runs until nothing is left to deliver.
func (d *SyncDriver) Start() error {
	d.Begin()
	return d.Run()
}

// Begin sends every instance its start message, without running: Step then moves the job
// a message at a time.
func (d *SyncDriver) Begin() {
	for _, rs := range d.byVert {
		for _, r := range rs {
			d.send(r.self, startMsg{})
		}
	}
}

// Step delivers at most n queued messages and reports how many it delivered.
func (d *SyncDriver) Step(n int) (int, error) {
	done := 0
	for done < n && len(d.queue) > 0 && d.err == nil {
		e := d.queue[0]
		d.queue[0] = envelope{}
		d.queue = d.queue[1:]
		if r, ok := d.runners[e.to.Id]; ok {
			d.deliver(r, e.msg)
		}
		done++
	}
	return done, d.err
}

// Run delivers queued messages until none is left, and returns the job's error, if any.
func (d *SyncDriver) Run() error {
	for len(d.queue) > 0 && d.err == nil {
		e := d.queue[0]
		d.queue[0] = envelope{}
		d.queue = d.queue[1:]
		r, ok := d.runners[e.to.Id]
		if !ok {
			continue
		}
		d.deliver(r, e.msg)
	}
	return d.err
}

func (d *SyncDriver) deliver(r *runner, msg any) {
	defer func() {
		if p := recover(); p != nil {
			d.fail(fmt.Errorf("instance %s: panic: %v", r.env.ID, p))
		}
	}()
	r.deliver(msg)
}

// Wake sends a pull to every instance of vertex v (a source whose Read returned ErrWait)
// and runs.
func (d *SyncDriver) Wake(v int) error {
	for _, r := range d.byVert[v] {
		d.send(r.self, pullMsg{})
	}
	return d.Run()
}

// Flush makes every instance send what it buffers, as if the linger had passed (and what
// local aggregation holds back, as if its mini-batch had ended), and runs.
func (d *SyncDriver) Flush() error {
	for _, rs := range d.byVert {
		for _, r := range rs {
			d.send(r.self, flushTickMsg{all: true})
		}
	}
	return d.Run()
}

// FlushWatermarks makes every instance send its watermark on to receivers it has no records
// for, as if the watermark interval had passed, and runs.
func (d *SyncDriver) FlushWatermarks() error {
	for _, rs := range d.byVert {
		for _, r := range rs {
			d.send(r.self, wmTickMsg{})
		}
	}
	return d.Run()
}

// Done reports whether every instance has finished.
func (d *SyncDriver) Done() bool { return d.left == 0 }

// Task returns the task of instance i of vertex v.
func (d *SyncDriver) Task(v, i int) Task { return d.byVert[v][i].task }

// Close ends the job: closes the tasks that did not finish and runs the plan's end hooks.
// It is safe to call twice.
func (d *SyncDriver) Close() error {
	if d.ended {
		return nil
	}
	d.ended = true
	d.cancel()
	var errs []error
	for _, rs := range d.byVert {
		for _, r := range rs {
			if !r.done {
				r.stopTimers()
				r.stopEmission()
				if err := r.task.Close(); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	errs = append(errs, d.job.end())
	return errors.Join(errs...)
}

func (d *SyncDriver) send(to *pa.PID, msg any) { d.queue = append(d.queue, envelope{to, msg}) }
func (d *SyncDriver) context() context.Context { return d.ctx }
func (d *SyncDriver) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}
func (d *SyncDriver) finished(*runner) { d.left-- }
