package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/jobruntime"
)

type edgeKey struct{ to, port int }

// vertexPlan is a vertex at compile time: its root stage, the stages fused after it, and
// the index of each of its outgoing channel groups.
type vertexPlan struct {
	index     int
	root      *stage
	newTask   func(ic *inst) (actor.Task, error)
	chain     []*stage
	edgeIndex map[edgeKey]int
}

func (g *Graph) onEndSink(s *stage, close func() error) {
	g.sinkClosers = append(g.sinkClosers, sinkCloser{s, close})
}

type sinkCloser struct {
	s     *stage
	close func() error
}

// Build checks the graph and compiles it into a job. Every mistake found is in the error.
func (g *Graph) Build(opts ...JobOption) (*Job, error) {
	var cfg actor.Config
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("build %s: %w", g.name, err)
	}
	if s, ok := cfg.Checkpoints.(*storeSink); ok && cfg.Restore == nil && s.savepoint != "" && !s.fromScratch {
		cp, err := s.loadSavepoint(context.Background())
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", g.name, err)
		}
		cfg.Logger.Info("restoring from savepoint", "name", s.savepoint, "id", cp.ID)
		cfg.Restore = cp
	}
	if s, ok := cfg.Checkpoints.(*storeSink); ok && cfg.Restore == nil && !s.fromScratch {
		cp, skipped, err := s.latest(context.Background())
		for _, e := range skipped {
			cfg.Logger.Warn("corrupt checkpoint skipped", "err", e)
		}
		if err != nil {
			return nil, fmt.Errorf("build %s: find the checkpoint to start from: %w", g.name, err)
		}
		if cp != nil {
			cfg.Logger.Info("restoring from checkpoint", "id", cp.ID)
		}
		cfg.Restore = cp
	}
	if err := g.validate(); err != nil {
		return nil, fmt.Errorf("build %s: %w", g.name, err)
	}
	plan := &actor.Plan{Job: g.name}
	built := false
	defer func() {
		if !built {
			for _, s := range g.stages {
				if s.abort != nil {
					s.abort()
					s.abort = nil
				}
			}
		}
	}()
	var vps []*vertexPlan
	vertexOf := map[int]*vertexPlan{}
	for _, s := range g.stages {
		if !s.root {
			continue
		}
		n, err := s.instances(&cfg)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", g.name, err)
		}
		if cfg.Checkpoints != nil {
			// Better no checkpoints than checkpoints that restore a job without its state.
			switch {
			case !s.snapshots:
				return nil, fmt.Errorf("build %s: stage %q (%s) cannot take part in checkpoints yet: its state has no snapshot", g.name, s.name, s.kind)
			case s.source && !s.replayable:
				return nil, fmt.Errorf("build %s: source %q cannot rewind (its splits are not replayable), so it cannot take part in checkpoints", g.name, s.name)
			}
		}
		vp := &vertexPlan{index: len(vps), root: s, newTask: s.newTask, edgeIndex: map[edgeKey]int{}}
		vps = append(vps, vp)
		vertexOf[s.id] = vp
		plan.Vertices = append(plan.Vertices, &actor.Vertex{Name: s.name, Instances: n, Keyed: s.keyed, Source: s.source})
	}
	var pace *microBatches
	if cfg.MicroBatch > 0 {
		splits := 0
		for _, v := range plan.Vertices {
			if v.Source {
				splits += v.Instances
			}
		}
		pace = newMicroBatches(&cfg, splits)
	}
	for _, vp := range vps {
		seen := map[int]bool{}
		var visit func(s *stage)
		visit = func(s *stage) {
			if seen[s.id] {
				return
			}
			seen[s.id] = true
			vp.chain = append(vp.chain, s)
			for _, l := range s.links {
				if !l.exchange {
					visit(l.to)
					continue
				}
				k := edgeKey{to: l.to.id, port: l.port}
				if _, ok := vp.edgeIndex[k]; ok {
					continue
				}
				var out int
				for _, e := range plan.Edges {
					if e.From == vp.index {
						out++
					}
				}
				vp.edgeIndex[k] = out
				e := actor.Edge{From: vp.index, To: vertexOf[l.to.id].index, Port: l.port, Partitioning: l.partitioning}
				if l.wire != nil {
					e.Codec = l.wire()
				}
				plan.Edges = append(plan.Edges, e)
			}
		}
		visit(vp.root)
		v := plan.Vertices[vp.index]
		for _, s := range vp.chain {
			v.Stages = append(v.Stages, s.name)
		}
		v.New = func(env *actor.Env) (actor.Task, error) {
			ic := newInst(env, vp)
			ic.pace = pace
			task, err := vp.newTask(ic)
			if err != nil {
				return nil, err
			}
			if objs := snapshotObjectsOf(env.Config); objs != nil {
				task = offloadTask{Task: task, env: env, objs: objs} // large snapshots: handles
			}
			if len(ic.preCommits) == 0 {
				return task, nil
			}
			return twoPhaseTask{Task: task, ic: ic}, nil
		}
	}
	for _, sc := range g.sinkClosers {
		var once sync.Once
		close := sc.close
		name := sc.s.name
		plan.OnEnd = append(plan.OnEnd, func() (err error) {
			once.Do(func() {
				if e := close(); e != nil {
					err = fmt.Errorf("close sink %q: %w", name, e)
				}
			})
			return err
		})
	}
	if g.planning != nil { // Plan wants the description only; the deferred abort closes the splits
		*g.planning = g.describe(plan, vps)
		return nil, nil
	}
	aj, err := actor.NewJob(plan, cfg)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", g.name, err)
	}
	built = true
	for _, s := range g.stages {
		s.abort = nil
	}
	job := &Job{desc: g.describe(plan, vps), twoPhase: append([]func(int64, func(int) bool) error(nil), g.twoPhase...),
		restore: cfg.Restore, sinks: plan.OnEnd, pace: pace}
	job.aj.Store(aj)
	job.keyed = map[string]keyedQuery{}
	for i, vp := range vps {
		if vp.root.keyOf != nil {
			job.keyed[vp.root.name] = keyedQuery{instances: plan.Vertices[i].Instances, keyOf: vp.root.keyOf}
		}
	}
	if cfg.Restore != nil {
		job.restored = cfg.Restore.ID
	}
	opts = slices.Clone(opts)
	job.rebuild = func(more ...JobOption) (*Job, error) { return g.Build(append(opts, more...)...) }
	return job, nil
}

// validate reports every mistake in the graph.
func (g *Graph) validate() error {
	errs := append([]error(nil), g.errs...)
	if len(g.stages) == 0 {
		errs = append(errs, errors.New("the graph has no stages"))
	}
	for _, c := range g.checks {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	names := map[string]*stage{}
	for _, s := range g.stages {
		if prev, dup := names[s.name]; dup {
			errs = append(errs, fmt.Errorf("duplicate stage name %q (a %s and a %s)", s.name, prev.kind, s.kind))
			continue
		}
		names[s.name] = s
	}
	if cyc := g.findCycle(); cyc != nil {
		parts := make([]string, len(cyc))
		for i, s := range cyc {
			parts[i] = fmt.Sprintf("%q", s.name)
		}
		errs = append(errs, fmt.Errorf("cycle: %s (Eddy runs acyclic graphs)", strings.Join(parts, " → ")))
	}
	for _, s := range g.stages {
		if s.kind == "merge" && len(s.inputs) == 0 {
			errs = append(errs, fmt.Errorf("stage %q (merge): it has no inputs; give it some with Add", s.name))
		}
		if !s.sink && len(s.links) == 0 {
			errs = append(errs, fmt.Errorf("stage %q (%s): its output is not consumed (dangling); end it with To or feed it to another stage", s.name, s.kind))
		}
	}
	hasSource := false
	for _, s := range g.stages {
		if s.source {
			hasSource = true
		}
	}
	if len(g.stages) > 0 && !hasSource {
		errs = append(errs, errors.New("the graph has no source"))
	}
	return errors.Join(errs...)
}

// findCycle returns the stages of a cycle, first stage repeated at the end, or nil.
func (g *Graph) findCycle() []*stage {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(g.stages))
	var path []*stage
	var found []*stage
	var visit func(s *stage) bool
	visit = func(s *stage) bool {
		color[s.id] = grey
		path = append(path, s)
		for _, l := range s.links {
			switch color[l.to.id] {
			case grey:
				for i, p := range path {
					if p == l.to {
						found = append(append([]*stage(nil), path[i:]...), l.to)
					}
				}
				return true
			case white:
				if visit(l.to) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		color[s.id] = black
		return false
	}
	for _, s := range g.stages {
		if color[s.id] == white && visit(s) {
			return found
		}
	}
	return nil
}

// Job is a built graph, ready to run once.
type Job struct {
	// aj is the run under way, or the last one: a restart replaces it.
	aj       atomic.Pointer[actor.Job]
	desc     Description
	ran      atomic.Bool
	twoPhase []func(lastComplete int64, owns func(uid int) bool) error
	// restore is the checkpoint the run starts from (nil: none), restored its id (0: none).
	restore  *actor.Checkpoint
	restored int64
	// pace, in micro-batch mode, opens the batches.
	pace *microBatches
	// sinks closes the sinks (once); rebuild builds the graph again with more options, for
	// a restart.
	sinks   []func() error
	rebuild func(more ...JobOption) (*Job, error)
	// restarts counts the restarts per vertex (ErrorPolicy RestartStage), for Stats.
	restartsMu sync.Mutex
	restarts   map[string]int64
	// keyed holds the keyed vertices by name, for state queries.
	keyed map[string]keyedQuery
	// adminAddr is the admin endpoint's address while the job runs.
	adminAddr atomic.Pointer[net.TCPAddr]
}

// maxRestarts is how many times a job restarts from its last completed checkpoint under
// actor.RestartStage before the next failure fails it (as under actor.FailJob).
const maxRestarts = 3

// Run runs the job until its bounded sources are drained and everything is flushed, until
// ctx is cancelled, or until it fails. A job runs once. Under actor.RestartStage, a failed
// user function restarts it from the last completed checkpoint, up to maxRestarts times
// (on a cluster the run fails instead, and the nodes restart it together).
func (j *Job) Run(ctx context.Context) error {
	if j.ran.Swap(true) {
		return errors.New("run: this job has run already; build the graph again")
	}
	for attempt := 1; ; attempt++ {
		err := j.runOnce(ctx)
		switch {
		case !errors.Is(err, actor.ErrRestart), j.aj.Load().Config().Cluster != nil:
			return err // on a cluster, the nodes restart the run together
		case ctx.Err() != nil:
			return errors.Join(err, j.closeSinks()) // no restart: the run left them open
		}
		if rerr := j.restart(ctx, err, attempt); rerr != nil {
			return errors.Join(rerr, j.closeSinks())
		}
	}
}

// runOnce runs the job as built or last restarted.
func (j *Job) runOnce(ctx context.Context) error {
	aj := j.aj.Load()
	// Two-phase sinks settle what the last run left before anything is written.
	var owns func(int) bool
	if aj.Config().Cluster != nil {
		owns = aj.RunsHere
	}
	for _, recover := range j.twoPhase {
		if err := recover(j.restored, owns); err != nil {
			return fmt.Errorf("run: recover a two-phase sink to checkpoint %d: %w", j.restored, err)
		}
	}
	if j.restored == actor.FinalCheckpoint {
		return nil // the last run finished, and its output is committed now
	}
	stopAdmin, err := j.serveAdmin(ctx)
	if err != nil {
		return err
	}
	err = j.runActors(ctx, aj)
	stopAdmin(err)
	return err
}

// runActors runs aj, with its micro-batches opened alongside in micro-batch mode.
func (j *Job) runActors(ctx context.Context, aj *actor.Job) error {
	if j.pace == nil {
		return aj.Run(ctx)
	}
	batchCtx, stop := context.WithCancel(ctx)
	var batches sync.WaitGroup
	batches.Go(func() { j.pace.run(batchCtx, aj, aj.Config().Checkpoints != nil) })
	err := aj.Run(ctx)
	stop()
	batches.Wait()
	return err
}

// MicroBatches returns how long each micro-batch took, from its opening to its commit, in
// micro-batch mode (nil otherwise). After a restart it is the batches of the current run.
func (j *Job) MicroBatches() []time.Duration {
	if j.pace == nil {
		return nil
	}
	return j.pace.batches()
}

// restart builds the job again to run from the last completed checkpoint after the run
// ended with failure, a *actor.RestartError: the newest checkpoint that run completed, else
// the one it started from, else none (the start). After maxRestarts restarts the next run
// fails on a failure.
func (j *Job) restart(ctx context.Context, failure error, attempt int) error {
	aj := j.aj.Load()
	from := j.restore
	if last := aj.Checkpoints().Last; last > 0 {
		sink, ok := aj.Config().Checkpoints.(*storeSink)
		if !ok {
			return fmt.Errorf("restart after %w: checkpoint %d is in no store to load it from", failure, last)
		}
		cp, err := sink.loadCheckpoint(ctx, last)
		if err == nil {
			err = flattenDeltas(ctx, cp, sink.loadCheckpoint)
		}
		if err != nil {
			return fmt.Errorf("restart after %w: load checkpoint %d: %w", failure, last, err)
		}
		from = cp
	}
	more := []JobOption{restartFrom(from)}
	if attempt >= maxRestarts { // the next run is the last
		more = append(more, OnError(actor.FailJob))
	}
	next, err := j.rebuild(more...)
	if err != nil {
		return fmt.Errorf("restart after %w: %w", failure, err)
	}
	var re *actor.RestartError
	if errors.As(failure, &re) {
		j.restartsMu.Lock()
		if j.restarts == nil {
			j.restarts = map[string]int64{}
		}
		j.restarts[re.Identity.Stage]++
		j.restartsMu.Unlock()
	}
	j.restore, j.restored, j.sinks, j.pace = next.restore, next.restored, next.sinks, next.pace
	j.aj.Store(next.aj.Load())
	aj.Config().Logger.Warn("restarted the job", "attempt", attempt, "checkpoint", j.restored, "after", failure)
	return nil
}

// restartFrom makes Build start the job from cp, and from nothing (not from the newest
// checkpoint in the store) when cp is nil.
func restartFrom(cp *actor.Checkpoint) JobOption {
	return func(c *actor.Config) {
		c.Restore = cp
		if s, ok := c.Checkpoints.(*storeSink); ok {
			s.fromScratch = cp == nil
		}
	}
}

// closeSinks closes the job's sinks, which a run that does not start, or ends for a
// restart that does not happen, leaves open.
func (j *Job) closeSinks() error {
	var errs []error
	for _, f := range j.sinks {
		errs = append(errs, f())
	}
	return errors.Join(errs...)
}

// Describe returns the logical and physical plan.
func (j *Job) Describe() Description { return j.desc }

// Stats returns the counters of every vertex, of the run under way (or the last one); the
// restarts count over the job's runs.
func (j *Job) Stats() []actor.StageStats {
	st := j.aj.Load().Stats()
	j.restartsMu.Lock()
	defer j.restartsMu.Unlock()
	for i := range st {
		st[i].Restarts = max(st[i].Restarts, j.restarts[st[i].Stage])
	}
	return st
}

// Checkpoints returns how many checkpoints completed and the last one's duration and size.
func (j *Job) Checkpoints() actor.CheckpointStats { return j.aj.Load().Checkpoints() }

func init() {
	jobruntime.Of = func(job any) *actor.Job {
		if j, ok := job.(*Job); ok {
			return j.aj.Load()
		}
		return nil
	}
}

// CheckpointHistory returns the last checkpoints the job took (up to 64), oldest first.
func (j *Job) CheckpointHistory() []actor.CheckpointRecord { return j.aj.Load().CheckpointHistory() }

// Run builds the graph and runs it.
func (g *Graph) Run(ctx context.Context, opts ...JobOption) error {
	j, err := g.Build(opts...)
	if err != nil {
		return err
	}
	return j.Run(ctx)
}
