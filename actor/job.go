package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"

	pa "github.com/asynkron/protoactor-go/actor"
)

// Job is a plan ready to run.
type Job struct {
	plan    *Plan
	cfg     Config
	metrics []*StageMetrics
	// instances counts the instances per vertex, for Stats.
	instances []int
	ckpt      checkpointCounters
	// requests reaches the coordinator of the running job; nil when not running.
	requests atomic.Pointer[chan chan<- checkpointResult]
}

// Checkpoint takes a checkpoint now (a savepoint, when the caller keeps it) and returns it
// once it is complete: the job must be running, with checkpoints.
func (j *Job) Checkpoint(ctx context.Context) (Checkpoint, error) {
	req := j.requests.Load()
	if req == nil {
		return Checkpoint{}, errors.New("checkpoint: the job is not running with checkpoints")
	}
	ch := make(chan checkpointResult, 1)
	select {
	case *req <- ch:
	case <-ctx.Done():
		return Checkpoint{}, ctx.Err()
	}
	select {
	case r := <-ch:
		return r.cp, r.err
	case <-ctx.Done():
		return Checkpoint{}, ctx.Err()
	}
}

// restoredID is the id of the checkpoint the job starts from, 0 if none.
func (j *Job) restoredID() int64 {
	if j.cfg.Restore == nil {
		return 0
	}
	return j.cfg.Restore.ID
}

// Checkpoints returns the job's checkpoint counters.
func (j *Job) Checkpoints() CheckpointStats { return j.ckpt.snapshot() }

// NewJob checks plan and cfg and returns a job to run.
func NewJob(plan *Plan, cfg Config) (*Job, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(plan.Vertices) == 0 {
		return nil, errors.New("new job: the plan has no vertices")
	}
	j := &Job{plan: plan, cfg: cfg}
	for _, v := range plan.Vertices {
		if v.Instances < 1 {
			return nil, fmt.Errorf("new job: vertex %s has %d instances", v.Name, v.Instances)
		}
		m := &StageMetrics{watermarks: make(watermarks, v.Instances)}
		for i := range m.watermarks {
			m.watermarks[i].Store(MinWatermark)
		}
		j.metrics = append(j.metrics, m)
		j.instances = append(j.instances, v.Instances)
	}
	for _, e := range plan.Edges {
		if e.From < 0 || e.From >= len(plan.Vertices) || e.To < 0 || e.To >= len(plan.Vertices) {
			return nil, fmt.Errorf("new job: edge %d→%d leaves the plan", e.From, e.To)
		}
	}
	return j, nil
}

// Config returns the job's configuration with defaults filled in.
func (j *Job) Config() Config { return j.cfg }

// Stats returns a snapshot of every vertex's counters, in plan order.
func (j *Job) Stats() []StageStats {
	out := make([]StageStats, len(j.metrics))
	for i, m := range j.metrics {
		out[i] = m.snapshot(j.plan.Vertices[i].Name, j.instances[i], j.cfg.Clock.Now())
	}
	return out
}

// instantiate makes a runner per instance of every vertex, wired to drv.
func (j *Job) instantiate(drv driver, pidOf func(Identity) *pa.PID) ([]*runner, error) {
	pids := make([][]*pa.PID, len(j.plan.Vertices))
	for vi, v := range j.plan.Vertices {
		for i := range v.Instances {
			pids[vi] = append(pids[vi], pidOf(Identity{Job: j.plan.Job, Stage: v.Name, Index: i}))
		}
	}
	eos := make([]int, len(j.plan.Vertices))
	for _, e := range j.plan.Edges {
		eos[e.To] += j.plan.Vertices[e.From].Instances
	}
	var runners []*runner
	uid := 0
	for vi, v := range j.plan.Vertices {
		for i := range v.Instances {
			r := &runner{drv: drv, self: pids[vi][i], vertex: v, eosLeft: eos[vi], channels: eos[vi], uid: uid, wm: MinWatermark}
			uid++
			r.env = &Env{ID: Identity{Job: j.plan.Job, Stage: v.Name, Index: i}, Instances: v.Instances, Config: &j.cfg, Metrics: j.metrics[vi], UID: r.uid, r: r}
			for _, e := range j.plan.Edges {
				if e.From != vi {
					continue
				}
				to := j.plan.Vertices[e.To]
				g := &OutputGroup{r: r, index: len(r.outputs), port: e.Port, partitioning: e.Partitioning, dests: pids[e.To],
					credits: make([]int, to.Instances), stalled: make([]bool, to.Instances), flushWanted: make([]bool, to.Instances)}
				for d := range g.credits {
					g.credits[d] = j.cfg.Credits
				}
				r.outputs = append(r.outputs, g)
			}
			task, err := v.New(r.env)
			if err != nil {
				return nil, fmt.Errorf("start %s: %w", r.env.ID, err)
			}
			r.task = task
			if cp := j.cfg.Restore; cp != nil {
				r.lastBarrier = cp.ID
				if state, ok := cp.States[r.env.ID.String()]; ok {
					if err := task.Restore(state); err != nil {
						return nil, fmt.Errorf("restore %s from checkpoint %d: %w", r.env.ID, cp.ID, err)
					}
				}
			}
			for _, g := range r.outputs {
				if g.buffers == nil {
					return nil, fmt.Errorf("start %s: output %d has no writer", r.env.ID, g.index)
				}
			}
			runners = append(runners, r)
		}
	}
	return runners, nil
}

// Run runs the job on Proto.Actor until every source is exhausted and everything is
// flushed, until ctx is cancelled (it then stops cleanly and returns ctx's error), or until
// the job fails. Sinks are closed before it returns.
func (j *Job) Run(ctx context.Context) (err error) {
	logger := j.cfg.Logger
	sys := pa.NewActorSystem(pa.WithLoggerFactory(func(*pa.ActorSystem) *slog.Logger {
		return logger.With("component", "protoactor")
	}))
	defer sys.Shutdown()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d := &protoDriver{sys: sys, ctx: ctx, cancel: cancel, allDone: make(chan struct{})}
	runners, err := j.instantiate(d, func(id Identity) *pa.PID { return sys.NewLocalPID(id.String()) })
	if err != nil {
		j.end()
		return err
	}
	for _, r := range runners {
		if node := j.cfg.Placement.Node(r.env.ID); node != "" {
			j.end()
			return fmt.Errorf("place %s: node %q is remote, and this runtime runs local placement only", r.env.ID, node)
		}
	}
	d.left.Store(int64(len(runners)))
	var coordWG sync.WaitGroup
	coordCtx, stopCoord := context.WithCancel(ctx)
	stopCoordinator := func() {
		j.requests.Store(nil)
		stopCoord()
		coordWG.Wait()
	}
	defer stopCoordinator()
	if j.cfg.Checkpoints != nil {
		d.acks = make(chan ackMsg, 2*len(runners))
		requests := make(chan chan<- checkpointResult)
		j.requests.Store(&requests)
		c := &coordinator{sink: j.cfg.Checkpoints, interval: j.cfg.CheckpointInterval, total: len(runners), first: j.restoredID(), requests: requests,
			acks: d.acks, stats: &j.ckpt, onError: func(err error) { logger.Warn("checkpoint failed", "err", err) },
			send: func(id int64, complete bool) {
				for _, r := range runners {
					if complete {
						d.send(r.self, completeMsg{id})
					} else {
						d.send(r.self, triggerMsg{id})
					}
				}
			}}
		coordWG.Add(1)
		go c.run(coordCtx, &coordWG)
	}
	var pids []*pa.PID
	for _, r := range runners {
		props := pa.PropsFromProducer(func() pa.Actor { return &instanceActor{r: r, drv: d} })
		pid, err := sys.Root.SpawnNamed(props, r.env.ID.String())
		if err != nil {
			d.fail(fmt.Errorf("spawn %s: %w", r.env.ID, err))
			break
		}
		pids = append(pids, pid)
	}
	finished := false
	if ctx.Err() == nil {
		for _, r := range runners {
			sys.Root.Send(r.self, startMsg{})
		}
		select {
		case <-d.allDone:
			finished = true
		case <-ctx.Done():
		}
	}
	stopCoordinator()
	// From here on nothing is sent: a message to an actor already stopped would become a
	// Proto.Actor dead letter.
	d.stopping.Store(true)
	for _, pid := range pids {
		_ = sys.Root.StopFuture(pid).Wait()
	}
	if finished && j.cfg.Checkpoints != nil && ctx.Err() == nil {
		if ferr := j.finalCheckpoint(ctx, runners); ferr != nil {
			err = ferr
		}
	}
	// The actors are stopped: their runners are ours again. Close what did not finish.
	for _, r := range runners {
		if !r.done {
			r.stopTimers()
			if cerr := r.task.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close %s: %w", r.env.ID, cerr)
			}
		}
	}
	if endErr := j.end(); endErr != nil && err == nil {
		err = endErr
	}
	if cause := context.Cause(ctx); cause != nil && err == nil {
		err = cause
	}
	return err
}

// FinalCheckpoint is the id of the checkpoint a job with checkpoints takes when all of its
// input has been handled: the end of the job. Two-phase sinks pre-commit their last
// transactions to it as each instance finishes, and commit them when it is saved.
const FinalCheckpoint int64 = math.MaxInt64

// finalCheckpoint saves the checkpoint of a job that has finished, every instance with the
// state it ended with, and commits the two-phase sinks' last transactions.
func (j *Job) finalCheckpoint(ctx context.Context, runners []*runner) error {
	cp := Checkpoint{ID: FinalCheckpoint, States: map[string][]byte{}, Finished: map[string]bool{}}
	for _, r := range runners {
		id := r.env.ID.String()
		cp.Finished[id] = true
		if r.final != nil {
			cp.States[id] = r.final
		}
	}
	if err := j.cfg.Checkpoints.Save(ctx, cp); err != nil {
		j.ckpt.failed.Add(1)
		return fmt.Errorf("final checkpoint: %w", err)
	}
	j.ckpt.completed.Add(1)
	j.ckpt.last.Store(FinalCheckpoint)
	for _, r := range runners {
		r.task.CheckpointComplete(FinalCheckpoint)
	}
	return nil
}

// end runs the plan's OnEnd hooks (close sinks).
func (j *Job) end() error {
	var errs []error
	for _, f := range j.plan.OnEnd {
		if err := f(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type protoDriver struct {
	sys      *pa.ActorSystem
	ctx      context.Context
	cancel   context.CancelCauseFunc
	left     atomic.Int64
	allDone  chan struct{}
	once     sync.Once
	stopping atomic.Bool
	acks     chan ackMsg // nil without checkpoints
}

func (d *protoDriver) ack(id int64, r *runner, state []byte, err error) {
	if d.acks == nil {
		return
	}
	select {
	case d.acks <- ackMsg{id: id, identity: r.env.ID.String(), state: state, finished: r.done, err: err}:
	case <-d.ctx.Done():
	}
}

func (d *protoDriver) send(to *pa.PID, msg any) {
	if !d.stopping.Load() {
		d.sys.Root.Send(to, msg)
	}
}
func (d *protoDriver) context() context.Context { return d.ctx }
func (d *protoDriver) fail(err error)           { d.cancel(err) }
func (d *protoDriver) finished(*runner) {
	if d.left.Add(-1) == 0 {
		d.once.Do(func() { close(d.allDone) })
	}
}

// instanceActor is the Proto.Actor actor of one instance.
type instanceActor struct {
	r   *runner
	drv *protoDriver
}

func (a *instanceActor) Receive(c pa.Context) {
	switch c.Message().(type) {
	case *pa.Started, *pa.Stopping, *pa.Restarting:
		return
	case *pa.Stopped:
		a.r.stopTimers()
		return
	}
	defer func() {
		if p := recover(); p != nil {
			a.drv.fail(fmt.Errorf("instance %s: panic: %v", a.r.env.ID, p))
		}
	}()
	a.r.receive(c.Message())
}
