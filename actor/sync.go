package actor

import (
	"context"
	"errors"
	"fmt"

	pa "github.com/asynkron/protoactor-go/actor"
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
}

type envelope struct {
	to  *pa.PID
	msg any
}

// NewSyncDriver instantiates every vertex of job on one goroutine. Nothing runs until Start.
func NewSyncDriver(job *Job) (*SyncDriver, error) {
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
	for _, rs := range d.byVert {
		for _, r := range rs {
			d.send(r.self, startMsg{})
		}
	}
	return d.Run()
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
	r.receive(msg)
}

// Wake sends a pull to every instance of vertex v (a source whose Read returned ErrWait)
// and runs.
func (d *SyncDriver) Wake(v int) error {
	for _, r := range d.byVert[v] {
		d.send(r.self, pullMsg{})
	}
	return d.Run()
}

// Flush makes every instance send what it buffers, as if the linger had passed, and runs.
func (d *SyncDriver) Flush() error {
	for _, rs := range d.byVert {
		for _, r := range rs {
			d.send(r.self, flushTickMsg{})
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
