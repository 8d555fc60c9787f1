package actor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"
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
	// handoff ends a cluster run at a checkpoint; nil when not running on a cluster.
	handoff atomic.Pointer[func(context.Context) error]
	// deadLetters counts the job's dead letters, for Config.MaxDeadLetters.
	deadLetters atomic.Int64
	// inspect reaches the instances of the running job; nil when not running.
	inspect atomic.Pointer[func(id Identity, msg any) bool]
}

// ErrNoState says an instance holds no state for the key asked about.
var ErrNoState = errors.New("no state for the key")

// inspectMsg asks an instance for the state of key, JSON-encoded in its own goroutine (so
// that nothing of the state is shared).
type inspectMsg struct {
	key   any
	reply chan inspectReply // buffered: the instance never waits on it
}

type inspectReply struct {
	json []byte
	err  error
}

// Inspect returns the state instance index of vertex stage holds for key, as JSON, while
// the job runs: ErrNoState when it holds none (or the stage keeps no inspectable state).
// key must be of the stage's key type, and index its key group.
func (j *Job) Inspect(ctx context.Context, stage string, index int, key any) ([]byte, error) {
	send := j.inspect.Load()
	if send == nil {
		return nil, errors.New("inspect: the job is not running")
	}
	msg := inspectMsg{key: key, reply: make(chan inspectReply, 1)}
	if !(*send)(Identity{Job: j.plan.Job, Stage: stage, Index: index}, msg) {
		return nil, fmt.Errorf("inspect %s/%d: no such instance runs here", stage, index)
	}
	select {
	case r := <-msg.reply:
		return r.json, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("inspect %s/%d: %w", stage, index, ctx.Err())
	}
}

// answer handles an inspectMsg in the instance's goroutine.
func (m inspectMsg) answer(task Task) {
	in, ok := task.(Inspector)
	if !ok {
		m.reply <- inspectReply{err: ErrNoState}
		return
	}
	v, found := in.Inspect(m.key)
	if !found {
		m.reply <- inspectReply{err: ErrNoState}
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		err = fmt.Errorf("encode the state as JSON: %w", err)
	}
	m.reply <- inspectReply{json: b, err: err}
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

// ErrNodeUnreachable ends a cluster run when the transport to another node of the run is
// lost or cannot be set up.
var ErrNodeUnreachable = errors.New("lost the connection to a node of the run")

// ErrNotStarted ends a cluster run whose nodes did not all start it: they saw other member
// lists or restored other checkpoints.
var ErrNotStarted = errors.New("the nodes of the run did not all start it")

// ErrHandedOff ends a cluster run that stopped at a checkpoint everyone completed, so that
// the next run (with another placement) starts from there and replays nothing.
var ErrHandedOff = errors.New("the run handed its state off at a checkpoint")

// Handoff ends a run on a cluster at a checkpoint: the coordinator takes one, every node's
// run then stops with ErrHandedOff, and the next run (after a join, say) starts from it.
// It returns once this node's run has stopped so, or with the error that prevented it.
func (j *Job) Handoff(ctx context.Context) error {
	h := j.handoff.Load()
	if h == nil {
		return errors.New("handoff: the job is not running on a cluster")
	}
	return (*h)(ctx)
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

// CheckpointHistory returns the last checkpoints the job took (up to 64), oldest first.
func (j *Job) CheckpointHistory() []CheckpointRecord { return j.ckpt.recent() }

// alignment returns the time the job's instances spent aligning barriers, summed.
func (j *Job) alignment() time.Duration {
	var d int64
	for _, m := range j.metrics {
		d += m.AlignmentNanos.Load()
	}
	return time.Duration(d)
}

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
		j.metrics = append(j.metrics, newStageMetrics(v.Instances))
		j.instances = append(j.instances, v.Instances)
	}
	for _, e := range plan.Edges {
		if e.From < 0 || e.From >= len(plan.Vertices) || e.To < 0 || e.To >= len(plan.Vertices) {
			return nil, fmt.Errorf("new job: edge %d→%d leaves the plan", e.From, e.To)
		}
	}
	return j, nil
}

// RunsHere reports whether the instance numbered uid (Env.UID) runs on this node: always,
// without a cluster.
func (j *Job) RunsHere(uid int) bool {
	if j.cfg.Cluster == nil {
		return true
	}
	for _, v := range j.plan.Vertices {
		if uid < v.Instances {
			return j.cfg.Placement.Node(Identity{Job: j.plan.Job, Stage: v.Name, Index: uid}) == ""
		}
		uid -= v.Instances
	}
	return false
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

// instantiate makes a runner per instance of every vertex that runs here (all of them,
// without a cluster), wired to drv.
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
			if j.cfg.Cluster != nil && j.cfg.Placement.Node(Identity{Job: j.plan.Job, Stage: v.Name, Index: i}) != "" {
				uid++ // it runs on another node; uids number every instance of the job
				continue
			}
			r := &runner{drv: drv, self: pids[vi][i], vertex: v, eosLeft: eos[vi], channels: eos[vi], uid: uid, wm: MinWatermark}
			uid++
			for _, e := range j.plan.Edges {
				if e.To == vi {
					for len(r.inputs) <= e.Port {
						r.inputs = append(r.inputs, nil)
					}
					r.inputs[e.Port] = e.Codec
				}
			}
			r.env = &Env{ID: Identity{Job: j.plan.Job, Stage: v.Name, Index: i}, Instances: v.Instances, Config: &j.cfg, Metrics: j.metrics[vi], UID: r.uid, r: r, deadLetters: &j.deadLetters}
			for _, e := range j.plan.Edges {
				if e.From != vi {
					continue
				}
				to := j.plan.Vertices[e.To]
				g := &OutputGroup{r: r, index: len(r.outputs), port: e.Port, partitioning: e.Partitioning, dests: pids[e.To],
					credits: make([]int, to.Instances), stalled: make([]bool, to.Instances), flushWanted: make([]bool, to.Instances),
					codec: e.Codec, remote: make([]bool, to.Instances)}
				for d := range g.credits {
					g.credits[d] = j.cfg.Credits
					g.remote[d] = j.cfg.Cluster != nil && g.dests[d].Address != r.self.Address
				}
				r.outputs = append(r.outputs, g)
			}
			limit := 0
			for _, g := range r.outputs {
				limit += len(g.dests) * j.cfg.Credits
			}
			r.env.Metrics.instance(i).creditLimit.Store(int64(limit))
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
// the job fails. Sinks are closed before it returns, but when a local run ends with a
// *RestartError (ErrorPolicy RestartStage): the caller runs the job again from the last
// completed checkpoint into the same sinks (graph.Job.Run does), and closes them.
func (j *Job) Run(ctx context.Context) error {
	if j.cfg.Cluster != nil {
		return j.runCluster(ctx)
	}
	return j.runLocal(ctx)
}

// runLocal runs every instance of the job in this process, on an actor system of its own.
func (j *Job) runLocal(ctx context.Context) error {
	paLogger := j.cfg.ProtoActorLogger.With("component", "protoactor")
	sys := pa.NewActorSystem(pa.WithLoggerFactory(func(*pa.ActorSystem) *slog.Logger { return paLogger }))
	defer sys.Shutdown()
	r, err := j.prepare(ctx, sys)
	if err != nil {
		return err
	}
	defer r.cancel(nil)
	if err := r.requireLocal(); err != nil {
		j.end()
		return err
	}
	r.startCoordinator(true)
	defer r.stopCoordinator()
	r.spawn()
	finished := r.start() && r.await(r.d.allDone)
	r.stop()
	if finished && r.ctx.Err() == nil && j.cfg.Checkpoints != nil {
		err = j.finalCheckpoint(r.ctx, r.finals(), r.runners)
	}
	return r.finish(err)
}

// runCluster runs this node's part of a job that spans nodes, on the node's actor system:
// the identities placed here, with the other nodes' once all have spawned theirs. The owner
// of the coordinator role triggers checkpoints, collects the final states and saves the
// final checkpoint.
func (j *Job) runCluster(ctx context.Context) error {
	cl := j.cfg.Cluster
	r, err := j.prepare(ctx, cl.System) // the node's system: it outlives the run
	if err != nil {
		return err
	}
	defer r.cancel(nil)
	coordinating := cl.Coordinator == ""
	leave, err := r.d.enterCluster(r.names, coordinating, len(r.all))
	if err != nil {
		j.end()
		return err
	}
	defer leave()
	r.startCoordinator(coordinating)
	defer r.stopCoordinator()
	defer r.offerHandoff(coordinating)()
	r.spawn()
	r.awaitNodes()
	var finals map[string][]byte // the final state of every instance of the job
	var finished bool
	switch {
	case !r.start():
	case coordinating:
		finals, finished = r.d.awaitFinals(r.ctx, len(r.all))
	default:
		finished = r.await(r.d.remoteDone)
	}
	r.stop()
	if finished && r.ctx.Err() == nil {
		err = r.endCluster(coordinating, finals)
	}
	return r.finish(err)
}

// run is one Run of a job on Proto.Actor: its driver, the instances that run here, and the
// coordinator and handoff goroutines it owns.
type run struct {
	j *Job
	// ctx is done when the run fails or is stopped; cancel ends it with a cause.
	ctx    context.Context
	cancel context.CancelCauseFunc
	sys    *pa.ActorSystem
	d      *protoDriver
	names  actorNames
	// runners are the instances that run here, all every instance of the job (here or
	// elsewhere: the coordinator triggers them all), pids the actors spawned here.
	runners []*runner
	all     []*pa.PID
	pids    []*pa.PID
	// coordCtx ends the coordinator and the handoffs, which coordWG and handoffs wait for.
	coordCtx  context.Context
	stopCoord context.CancelFunc
	coordWG   sync.WaitGroup
	handoffs  sync.WaitGroup
}

// prepare makes the run's driver and the runners of the instances that run here, on sys.
func (j *Job) prepare(ctx context.Context, sys *pa.ActorSystem) (*run, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	r := &run{j: j, ctx: ctx, cancel: cancel, sys: sys, names: j.actorNames()}
	r.d = &protoDriver{sys: sys, ctx: ctx, cancel: cancel, allDone: make(chan struct{}), cluster: j.cfg.Cluster}
	runners, err := j.instantiate(r.d, r.pidOf)
	if err != nil {
		cancel(nil)
		j.end()
		return nil, err
	}
	r.runners = runners
	r.d.left.Store(int64(len(runners)))
	for _, v := range j.plan.Vertices {
		for i := range v.Instances {
			r.all = append(r.all, r.pidOf(Identity{Job: j.plan.Job, Stage: v.Name, Index: i}))
		}
	}
	if j.cfg.Checkpoints != nil {
		r.d.acks = make(chan ackMsg, 2*len(r.all))
	}
	r.coordCtx, r.stopCoord = context.WithCancel(ctx)
	return r, nil
}

// pidOf returns the actor of identity id: on its node in a cluster run, here otherwise.
func (r *run) pidOf(id Identity) *pa.PID {
	if node := r.j.cfg.Placement.Node(id); node != "" && r.j.cfg.Cluster != nil {
		return pa.NewPID(node, r.names.instance(id))
	}
	return r.sys.NewLocalPID(r.names.instance(id))
}

// requireLocal refuses a placement that puts an instance on another node: a run without a
// cluster cannot reach it.
func (r *run) requireLocal() error {
	for _, rn := range r.runners {
		if node := r.j.cfg.Placement.Node(rn.env.ID); node != "" {
			return fmt.Errorf("place %s: node %q is remote, and the job has no cluster to reach it", rn.env.ID, node)
		}
	}
	return nil
}

// startCoordinator starts the checkpoint coordinator, when the job takes checkpoints and
// this node coordinates them; stopCoordinator stops it and waits for it.
func (r *run) startCoordinator(coordinating bool) {
	j := r.j
	if j.cfg.Checkpoints == nil || !coordinating {
		return
	}
	requests := make(chan chan<- checkpointResult)
	j.requests.Store(&requests)
	var fence func() error
	if cl := j.cfg.Cluster; cl != nil {
		fence = cl.Fence
	}
	c := &coordinator{fence: fence, sink: j.cfg.Checkpoints, interval: j.cfg.CheckpointInterval, timeout: j.cfg.CheckpointTimeout, total: len(r.all), first: j.restoredID(), requests: requests,
		acks: r.d.acks, stats: &j.ckpt, alignment: j.alignment, onError: func(err error) {
			if r.coordCtx.Err() == nil { // not a checkpoint cut short by the end of the run
				j.cfg.Logger.Warn("checkpoint failed", "err", err)
			}
		},
		onFenced: r.d.fail,
		send:     r.sendAll}
	r.coordWG.Add(1)
	go c.run(r.coordCtx, &r.coordWG)
}

func (r *run) stopCoordinator() {
	r.j.requests.Store(nil)
	r.stopCoord()
	r.coordWG.Wait()
}

// sendAll sends every instance of the job the trigger of checkpoint id, or its completion.
func (r *run) sendAll(id int64, complete bool) {
	for _, pid := range r.all {
		if complete {
			r.d.send(pid, completeMsg{id})
		} else {
			r.d.send(pid, triggerMsg{id})
		}
	}
}

// offerHandoff lets Job.Handoff end the cluster run at a checkpoint and, on the
// coordinator, lets other nodes ask for one; the returned function withdraws the offer.
func (r *run) offerHandoff(coordinating bool) func() {
	j, d := r.j, r.d
	h := func(hctx context.Context) error { return d.handoff(hctx, coordinating, j.Checkpoint) }
	j.handoff.Store(&h)
	if coordinating {
		// Other nodes ask for a handoff through the control actor.
		d.handoffAsked = func() {
			r.handoffs.Add(1)
			go func() {
				defer r.handoffs.Done()
				if err := d.handoff(r.coordCtx, true, j.Checkpoint); err != nil && r.coordCtx.Err() == nil {
					j.cfg.Logger.Warn("handoff failed", "err", err)
				}
			}()
		}
	}
	return func() { j.handoff.Store(nil) }
}

// spawn spawns the actor of every instance that runs here; a failure fails the run.
func (r *run) spawn() {
	for _, rn := range r.runners {
		props := pa.PropsFromProducer(func() pa.Actor { return &instanceActor{r: rn, drv: r.d} })
		pid, err := r.sys.Root.SpawnNamed(props, rn.self.Id)
		if err != nil {
			r.d.fail(fmt.Errorf("spawn %s: %w", rn.env.ID, err))
			return
		}
		r.pids = append(r.pids, pid)
	}
	here := make(map[Identity]*pa.PID, len(r.runners))
	for i, pid := range r.pids {
		here[r.runners[i].env.ID] = pid
	}
	inspect := func(id Identity, msg any) bool {
		pid, ok := here[id]
		if ok {
			r.d.send(pid, msg)
		}
		return ok
	}
	r.j.inspect.Store(&inspect)
}

// awaitNodes returns once every node of the cluster run has spawned its actors: no
// instance starts before, since a batch sent to an actor not there yet would be lost.
// Nodes that disagree on the run (another member list, another checkpoint) never meet:
// after StartTimeout the run fails, and the next one starts from the store again.
func (r *run) awaitNodes() {
	if r.ctx.Err() != nil {
		return
	}
	cl := r.j.cfg.Cluster
	startCtx, stop := context.WithTimeout(r.ctx, cl.startTimeout())
	defer stop()
	r.d.awaitGo(startCtx, len(cl.Nodes))
	if startCtx.Err() != nil && r.ctx.Err() == nil {
		r.d.cancel(fmt.Errorf("%w within %v", ErrNotStarted, cl.startTimeout()))
	}
}

// start starts every instance that runs here, unless the run has ended already; it
// reports whether it did.
func (r *run) start() bool {
	if r.ctx.Err() != nil {
		return false
	}
	for _, rn := range r.runners {
		r.sys.Root.Send(rn.self, startMsg{})
	}
	return true
}

// await waits for done or the end of the run, and reports whether done came.
func (r *run) await(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// stop ends the run's work here: the other nodes may go, the coordinator and the handoffs
// stop, then the actors. From then on nothing is sent (a message to an actor already
// stopped would become a Proto.Actor dead letter), and the runners are the caller's again.
func (r *run) stop() {
	if r.d.disarm != nil {
		r.d.disarm()
	}
	r.stopCoordinator()
	r.handoffs.Wait()
	r.j.inspect.Store(nil)
	r.d.stopping.Store(true)
	for _, pid := range r.pids {
		_ = r.sys.Root.StopFuture(pid).Wait()
	}
	// Nothing is in flight any more (credits still on their way when the actors stopped
	// are dropped with them).
	for _, rn := range r.runners {
		im := rn.instanceMetrics()
		im.inFlight.Store(0)
		im.queued.Store(0)
	}
}

// finals returns the state each instance here finished with, by identity.
func (r *run) finals() map[string][]byte {
	finals := make(map[string][]byte, len(r.runners))
	for _, rn := range r.runners {
		finals[rn.env.ID.String()] = rn.final
	}
	return finals
}

// endCluster ends a cluster run that finished: the coordinator saves the final checkpoint
// from every instance's final state and tells the other nodes the job is done; the others'
// two-phase sinks commit it, which the coordinator saved before it said so.
func (r *run) endCluster(coordinating bool, finals map[string][]byte) error {
	j := r.j
	var err error
	switch {
	case j.cfg.Checkpoints == nil:
	case coordinating:
		err = j.finalCheckpoint(r.ctx, finals, r.runners)
	default:
		for _, rn := range r.runners {
			rn.task.CheckpointComplete(FinalCheckpoint)
		}
	}
	if coordinating && err == nil {
		for _, o := range r.d.others {
			r.sys.Root.Send(o, encodeDone())
		}
	}
	return err
}

// finish closes the tasks of the instances that did not finish and, unless a local run
// ends for a restart, the sinks (the next run, from the last completed checkpoint, writes on
// into them). It returns err, else the first failure to close, else why the run ended.
func (r *run) finish(err error) error {
	for _, rn := range r.runners {
		if !rn.done {
			rn.stopTimers()
			if cerr := rn.task.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close %s: %w", rn.env.ID, cerr)
			}
		}
	}
	cause := context.Cause(r.ctx)
	if restart := r.j.cfg.Cluster == nil && errors.Is(cause, ErrRestart); !restart {
		if endErr := r.j.end(); endErr != nil && err == nil {
			err = endErr
		}
	}
	if cause != nil && err == nil {
		err = cause
	}
	return err
}

// actorNames names the job's actors. In a cluster, names carry the run's epoch and the
// checkpoint it restored, so that a message of an earlier run (in flight when it stopped)
// finds no actor of this one.
type actorNames struct {
	job    string
	suffix string
}

func (j *Job) actorNames() actorNames {
	n := actorNames{job: j.plan.Job}
	if j.cfg.Cluster != nil {
		n.suffix = fmt.Sprintf("@%d.%d", j.cfg.Cluster.Epoch, j.restoredID())
	}
	return n
}

func (n actorNames) instance(id Identity) string { return id.String() + n.suffix }
func (n actorNames) control() string             { return n.job + "/$control" + n.suffix }

// FinalCheckpoint is the id of the checkpoint a job with checkpoints takes when all of its
// input has been handled: the end of the job. Two-phase sinks pre-commit their last
// transactions to it as each instance finishes, and commit them when it is saved.
const FinalCheckpoint int64 = math.MaxInt64

// finalCheckpoint saves the checkpoint of a job that has finished, every instance with the
// state it ended with (finals, by identity), and commits the two-phase sinks' last
// transactions of runners, the instances that ran here.
func (j *Job) finalCheckpoint(ctx context.Context, finals map[string][]byte, runners []*runner) error {
	if cl := j.cfg.Cluster; cl != nil && cl.Fence != nil {
		if err := cl.Fence(); err != nil {
			j.ckpt.failed.Add(1)
			return fmt.Errorf("final checkpoint: fenced off: %w", err)
		}
	}
	cp := Checkpoint{ID: FinalCheckpoint, States: map[string][]byte{}, Finished: map[string]bool{}}
	for id, st := range finals {
		cp.Finished[id] = true
		if st != nil {
			cp.States[id] = st
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

	// In a cluster: the coordinator's control actor, the other nodes' control actors, the
	// final states of finished instances (on the coordinator), and the end of the job as
	// the coordinator announced it (elsewhere).
	cluster        *ClusterRun
	coordinatorPID *pa.PID
	others         []*pa.PID
	finals         chan ackMsg
	remoteDone     chan struct{}
	ready          chan string   // on the coordinator: a node (by address) has spawned its actors
	goSignal       chan struct{} // elsewhere: the coordinator says start
	goOnce         sync.Once
	doneOnce       sync.Once
	handoffMu      sync.Mutex
	handoffAsked   func() // on the coordinator: another node asks for a handoff
	disarm         func() // the end of the run: other nodes may go now
	failOnce       sync.Once
}

func (d *protoDriver) ack(id int64, r *runner, state []byte, err error) {
	if d.acks == nil || d.ctx.Err() != nil {
		return // a snapshot taken after the run failed must not complete a checkpoint
	}
	a := ackMsg{id: id, identity: r.env.ID.String(), state: state, finished: r.done, err: err}
	if d.cluster != nil && d.cluster.Coordinator != "" {
		d.send(d.coordinatorPID, encodeAck(a.wire()))
		return
	}
	select {
	case d.acks <- a:
	case <-d.ctx.Done():
	}
}

// wire is the acknowledgement as it travels to the coordinator's node.
func (a ackMsg) wire() ackWire {
	w := ackWire{id: a.id, identity: a.identity, state: a.state, finished: a.finished}
	if a.err != nil {
		w.err = a.err.Error()
	}
	return w
}

func (d *protoDriver) send(to *pa.PID, msg any) {
	if d.stopping.Load() {
		return
	}
	if d.cluster != nil && to.Address != d.sys.Address() {
		if _, ok := msg.(*wrapperspb.BytesValue); !ok {
			wire, err := encodeControl(msg)
			if err != nil {
				d.fail(fmt.Errorf("send to %s: %w", to, err))
				return
			}
			msg = wire
		}
	}
	d.sys.Root.Send(to, msg)
}

func (d *protoDriver) context() context.Context { return d.ctx }

func (d *protoDriver) fail(err error) {
	if d.cluster != nil && d.ctx.Err() == nil {
		// The job fails everywhere: the other nodes hear it from here.
		d.failOnce.Do(func() {
			for _, o := range d.others {
				d.sys.Root.Send(o, encodeFail(err.Error()))
			}
		})
	}
	d.cancel(err)
}

func (d *protoDriver) finished(r *runner) {
	if d.cluster != nil {
		// The coordinator saves the final checkpoint once every instance, on every node,
		// has finished: it needs their final states.
		a := ackMsg{id: FinalCheckpoint, identity: r.env.ID.String(), state: r.final, finished: true}
		if d.cluster.Coordinator != "" {
			d.send(d.coordinatorPID, encodeAck(a.wire()))
		} else {
			d.finals <- a // buffered for every instance of the job
		}
	}
	if d.left.Add(-1) == 0 {
		d.once.Do(func() { close(d.allDone) })
	}
}

// enterCluster makes this node's part of a cluster run: its control actor (acks and final
// states for the coordinator, the end of the job and failures from the other nodes), the
// addresses of the others, and a watch on the transport: a node that cannot be reached (it
// died, or its transport refuses ours) would stall the run, so the run fails instead. The
// returned function undoes it.
func (d *protoDriver) enterCluster(names actorNames, coordinating bool, instances int) (func(), error) {
	cl, sys := d.cluster, d.sys
	d.finals = make(chan ackMsg, instances)
	d.remoteDone = make(chan struct{})
	d.ready = make(chan string, 16)
	d.goSignal = make(chan struct{})
	if coordinating {
		d.coordinatorPID = sys.NewLocalPID(names.control())
	} else {
		d.coordinatorPID = pa.NewPID(cl.Coordinator, names.control())
	}
	nodes := map[string]bool{}
	for _, n := range cl.Nodes {
		d.others = append(d.others, pa.NewPID(n, names.control()))
		nodes[n] = true
	}
	var armed atomic.Bool // while the run needs the others
	armed.Store(true)
	sub := sys.EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*remote.EndpointTerminatedEvent); ok && nodes[e.Address] && armed.Load() {
			d.cancel(fmt.Errorf("%w: %s", ErrNodeUnreachable, e.Address))
		}
	})
	// Once the job is done everywhere, the others may go: their connections end.
	d.disarm = func() { armed.Store(false) }
	props := pa.PropsFromProducer(func() pa.Actor { return &controlActor{d: d} })
	pid, err := sys.Root.SpawnNamed(props, names.control())
	if err != nil {
		sys.EventStream.Unsubscribe(sub)
		return nil, fmt.Errorf("spawn the job's control actor: %w", err)
	}
	return func() {
		_ = sys.Root.StopFuture(pid).Wait()
		sys.EventStream.Unsubscribe(sub)
	}, nil
}

// awaitGo returns once every node of the run has spawned its actors: the coordinator waits
// for the others' word and then tells them to start; the others tell it and wait.
func (d *protoDriver) awaitGo(ctx context.Context, others int) {
	if d.cluster.Coordinator != "" {
		// Again and again: the coordinator's control actor may not be there yet.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			d.sys.Root.Send(d.coordinatorPID, encodeReady(d.sys.Address()))
			select {
			case <-d.goSignal:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
	seen := map[string]bool{}
	for len(seen) < others {
		select {
		case node := <-d.ready:
			seen[node] = true
		case <-ctx.Done():
			return
		}
	}
	for _, o := range d.others {
		d.sys.Root.Send(o, &wrapperspb.BytesValue{Value: []byte{wireGo}})
	}
}

// handoff ends the run at a checkpoint. The coordinator takes it (checkpoint asks the
// job's coordinator for one), tells the other nodes to stop, and stops; another node asks
// the coordinator and waits for its run to stop.
func (d *protoDriver) handoff(ctx context.Context, coordinating bool, checkpoint func(context.Context) (Checkpoint, error)) error {
	if coordinating {
		d.handoffMu.Lock() // one handoff at a time; a second one finds the run stopped
		defer d.handoffMu.Unlock()
		if errors.Is(context.Cause(d.ctx), ErrHandedOff) {
			return nil
		}
		cp, err := checkpoint(ctx)
		if err != nil {
			return fmt.Errorf("handoff: %w", err)
		}
		for _, o := range d.others {
			d.sys.Root.Send(o, &wrapperspb.BytesValue{Value: []byte{wireStop}})
		}
		d.cancel(fmt.Errorf("%w %d", ErrHandedOff, cp.ID))
		return nil
	}
	d.sys.Root.Send(d.coordinatorPID, &wrapperspb.BytesValue{Value: []byte{wireHandoff}})
	select {
	case <-d.ctx.Done():
		if cause := context.Cause(d.ctx); !errors.Is(cause, ErrHandedOff) {
			return fmt.Errorf("handoff: the run ended otherwise: %w", cause)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("handoff: %w", ctx.Err())
	}
}

// awaitFinals collects the final state of each of the job's total instances (on the
// coordinator of a cluster), or stops when ctx is done.
func (d *protoDriver) awaitFinals(ctx context.Context, total int) (map[string][]byte, bool) {
	finals := make(map[string][]byte, total)
	for len(finals) < total {
		select {
		case a := <-d.finals:
			finals[a.identity] = a.state
		case <-ctx.Done():
			return nil, false
		}
	}
	return finals, true
}

// controlActor is a node's actor for what other nodes send about the job as a whole.
type controlActor struct{ d *protoDriver }

func (a *controlActor) Receive(c pa.Context) {
	b, ok := c.Message().(*wrapperspb.BytesValue)
	if !ok {
		return // Proto.Actor's lifecycle messages
	}
	msg, err := decodeControlMessage(b.Value)
	if err != nil {
		a.d.cancel(fmt.Errorf("job control: %w", err))
		return
	}
	switch m := msg.(type) {
	case ackWire:
		am := ackMsg{id: m.id, identity: m.identity, state: m.state, finished: m.finished}
		if m.err != "" {
			am.err = errors.New(m.err)
		}
		if m.id == FinalCheckpoint {
			select {
			case a.d.finals <- am:
			default:
				a.d.cancel(fmt.Errorf("job control: more final states than instances (%s)", m.identity))
			}
			return
		}
		if a.d.acks == nil {
			return
		}
		select {
		case a.d.acks <- am:
		case <-a.d.ctx.Done():
		}
	case doneWire:
		a.d.doneOnce.Do(func() { close(a.d.remoteDone) })
	case readyWire:
		select {
		case a.d.ready <- m.node:
		default: // the coordinator is not waiting (any more): the node asks again if need be
		}
	case goWire:
		a.d.goOnce.Do(func() { close(a.d.goSignal) })
	case handoffWire:
		if a.d.handoffAsked != nil {
			a.d.handoffAsked()
		}
	case stopWire:
		a.d.cancel(ErrHandedOff)
	case failWire:
		a.d.cancel(fmt.Errorf("the job failed on another node: %s", m.reason))
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
		a.r.stopEmission()
		return
	}
	defer func() {
		if p := recover(); p != nil {
			a.drv.fail(fmt.Errorf("instance %s: panic: %v", a.r.env.ID, p))
		}
	}()
	msg := c.Message()
	if m, ok := msg.(inspectMsg); ok {
		m.answer(a.r.task)
		return
	}
	if m, ok := msg.(queryMsg); ok {
		m.answer(a.r)
		return
	}
	if b, ok := msg.(*wrapperspb.BytesValue); ok {
		var err error
		if msg, err = decodeInstanceMessage(b.Value, a.r.inputs, a.r.takeSpare); err != nil {
			a.drv.fail(fmt.Errorf("instance %s: from another node: %w", a.r.env.ID, err))
			return
		}
	}
	a.r.deliver(msg)
}
