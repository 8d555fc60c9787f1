package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/jobruntime"
)

// NodeConfig configures a node: its membership, its actor transport, its admin endpoint.
type NodeConfig struct {
	// Membership says how the node joins; its Meta is filled in by StartNode.
	Membership Config
	// RemoteAddr is where the node's actor transport (Proto.Actor remote, gRPC) listens,
	// host:port; port 0 picks one. "" means 127.0.0.1:0.
	RemoteAddr string
	// ServerTLS and ClientTLS, when set, put the actor transport under TLS: the server
	// side with the node's certificate (and, for mutual TLS, ClientAuth and ClientCAs),
	// the client side with the CAs it trusts (and its own certificate for mutual TLS).
	ServerTLS, ClientTLS *tls.Config
	// Advertise is the IP address peers reach this node at, for gossip and the actor
	// transport (with their bind ports). "" means the bind addresses' hosts; required when
	// either binds to all interfaces (0.0.0.0 or ::), which peers cannot dial.
	Advertise string
	// Insecure allows the actor transport without TLS, and gossip without a Key, on a
	// non-loopback address: by default StartNode refuses both, since anyone who reaches
	// the address could join the cluster or send actor messages. Only for a trusted
	// network.
	Insecure bool
	// MaxMessageSize bounds one gRPC message of the actor transport, sent or received, in
	// bytes. Default DefaultMaxMessageSize (64 MiB), which says why.
	MaxMessageSize int
	// AdminAddr is where the admin HTTP endpoint listens; "" means none. A host left out
	// (":9090") means loopback.
	AdminAddr string
	// Settle is how long the member list must stay the same before a run starts, so that
	// every node has seen the change (and stopped its run) before any starts again.
	// Default: 2s (Loopback profile: 1s).
	Settle time.Duration
	// FenceDir, when set, is a directory every node reaches (the checkpoint store's) where
	// each run's coordinator claims the job's DirFence, so that a coordinator of an older run
	// cannot save a checkpoint or commit. Fence, when set, takes its place.
	FenceDir string
	// Fence, when set, fences each run in an object store: the run's coordinator claims a
	// new epoch there (every older run's commits fail from then on, by the store's
	// condition), builds its part, and tells every other node the epoch, the record it
	// started from and the checkpoint it restores; they enter that epoch and restore that
	// checkpoint before any recovers or retracts anything. A run whose commit finds a newer
	// epoch stops: the node steps down and waits for the next run. The job must take its
	// checkpoints into the same store (persistence.FencedCheckpoints is both).
	Fence RunFence
	// Quorum, when above 0, is how many members the node must see to run the job: a
	// majority of the configured cluster size (static quorum, as Akka's split-brain
	// resolver). With fewer it pauses: it stops its run, commits nothing, says so, and
	// resumes when enough members are back. 0: no quorum, a run goes on with whoever is
	// left (two sides of a partition may both run the job; only a Fence keeps both from
	// committing).
	Quorum int
	// Expect is how many members the node waits for before the first run (later runs go on
	// with whoever is left). Default 1.
	Expect int
	// JoinTimeout is how long the node keeps trying its seeds (they may be starting too)
	// before it gives up. Default 30s.
	JoinTimeout time.Duration
	// MaxFailures is how many runs in a row may fail (a node unreachable, a stage that
	// failed the job) before Run gives up and returns the error; each failed run starts
	// again from the newest checkpoint, as Flink's fixed-delay restart does. Default 3.
	MaxFailures int
	// Logger receives the node's log. nil: slog.Default(). Proto.Actor's own log goes to
	// it at Warn and above only.
	Logger *slog.Logger
}

// joinRetrying joins through cfg's seeds, trying again every half second for up to
// timeout: nodes started together must not fail because a seed is a moment late.
func joinRetrying(ctx context.Context, cfg Config, timeout time.Duration) (*Members, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		m, err := Join(ctx, cfg)
		var mismatch *PlanMismatchError
		if err == nil || len(cfg.Seeds) == 0 || time.Now().After(deadline) || strings.Contains(err.Error(), "decrypt") || errors.As(err, &mismatch) {
			return m, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Node is one peer of a cluster: its membership, its actor system with the remote
// transport, its admin endpoint, and the runs of its job.
type Node struct {
	cfg       NodeConfig
	logger    *slog.Logger
	transport *Transport
	sys       *pa.ActorSystem // transport's
	members   *Members
	admin     *AdminServer

	leaving atomic.Bool
	// paused is set while the node sees fewer members than the quorum, ran once a run has
	// started (Run's goroutine only).
	paused, ran bool
	// starts answers other nodes' questions about the runs this node coordinates.
	starts *runStarts

	mu        sync.Mutex
	placement *Placement
	run       JobRun
	prevStats []actor.StageStats
}

// JobRun is a built job that a node runs: a *graph.Job.
type JobRun interface {
	Run(ctx context.Context) error
	Stats() []actor.StageStats
}

// StartNode starts the node's actor transport, joins the cluster and serves the admin
// endpoint. Close stops them.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	n := &Node{cfg: cfg, logger: cfg.Logger}
	if n.logger == nil {
		n.logger = slog.Default()
	}
	n.logger = n.logger.With("node", cfg.Membership.NodeID)
	if n.cfg.Settle <= 0 {
		n.cfg.Settle = 2 * time.Second
		if cfg.Membership.Profile == Loopback {
			n.cfg.Settle = time.Second
		}
	}
	if n.cfg.Expect < 1 {
		n.cfg.Expect = 1
	}
	if n.cfg.MaxFailures < 1 {
		n.cfg.MaxFailures = 3
	}
	if err := cfg.validateNetwork(n.logger); err != nil {
		return nil, fmt.Errorf("start node %s: %w", cfg.Membership.NodeID, err)
	}
	tr, err := startTransport(transportConfig{addr: cfg.RemoteAddr, advertise: cfg.Advertise, serverTLS: cfg.ServerTLS,
		clientTLS: cfg.ClientTLS, maxMessageSize: cfg.MaxMessageSize, logger: n.logger})
	if err != nil {
		return nil, err
	}
	n.transport, n.sys = tr, tr.System
	n.starts = &runStarts{}
	if _, err := n.sys.Root.SpawnNamed(pa.PropsFromProducer(func() pa.Actor { return n.starts }), startsActorName); err != nil {
		n.transport.Stop()
		return nil, fmt.Errorf("start node %s: %w", cfg.Membership.NodeID, err)
	}
	mc := cfg.Membership
	mc.Meta.RemoteAddr = n.sys.Address()
	mc.AdvertiseAddr = cfg.Advertise
	if mc.Logger == nil {
		mc.Logger = n.logger
	}
	if cfg.AdminAddr != "" {
		admin, err := ServeAdmin(ctx, cfg.AdminAddr, AdminHandler(n))
		if err != nil {
			n.transport.Stop()
			return nil, fmt.Errorf("start node %s: %w", mc.NodeID, err)
		}
		n.admin = admin
		mc.Meta.AdminAddr = admin.Addr().String()
	}
	m, err := joinRetrying(ctx, mc, cfg.JoinTimeout)
	if err != nil {
		if n.admin != nil {
			_ = n.admin.Close()
		}
		n.transport.Stop()
		return nil, fmt.Errorf("start node %s: %w", mc.NodeID, err)
	}
	n.members = m
	return n, nil
}

// Transport is a node's actor system with Proto.Actor remote (gRPC) started: the address
// other nodes send its identities' messages to.
type Transport struct {
	System *pa.ActorSystem
	remote *remote.Remote
}

// StartTransport starts an actor system whose remote listens on addr (host:port; port 0
// picks one, and System.Address says which), under TLS when serverTLS and clientTLS are
// set. Proto.Actor logs to logger at Warn and above only. Stop stops it.
func StartTransport(addr string, serverTLS, clientTLS *tls.Config, logger *slog.Logger) (*Transport, error) {
	return startTransport(transportConfig{addr: addr, serverTLS: serverTLS, clientTLS: clientTLS, logger: logger})
}

// Stop stops the transport and the actor system.
func (t *Transport) Stop() {
	t.remote.Shutdown(false)
	t.System.Shutdown()
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if h == "" {
		h = "127.0.0.1"
	}
	return h, port, nil
}

// Leave hands the node's key groups off at a checkpoint, when a job runs, and leaves the
// cluster: the others take them over from that checkpoint and replay nothing. Run then
// returns ErrLeft.
func (n *Node) Leave(ctx context.Context) error {
	n.leaving.Store(true)
	n.mu.Lock()
	run := n.run
	n.mu.Unlock()
	var err error
	if h := jobruntime.Of(run); h != nil {
		hctx, stop := context.WithTimeout(ctx, handoffTimeout)
		if err = h.Handoff(hctx); err != nil {
			n.logger.Warn("handoff failed: the node leaves without it", "err", err)
		}
		stop()
	}
	return errors.Join(err, n.members.Leave(5*time.Second))
}

// Close leaves the cluster (gracefully, but without a handoff: see Leave) and stops the
// transport and the admin endpoint.
func (n *Node) Close() error {
	err := n.members.Leave(5 * time.Second)
	if n.admin != nil {
		err = errors.Join(err, n.admin.Close())
	}
	n.transport.Stop()
	return err
}

// Self returns the node's own membership.
func (n *Node) Self() Member { return n.members.Self() }

// Members implements AdminSource.
func (n *Node) Members() []Member { return n.members.Members() }

// Placement implements AdminSource: the placement of the current run, nil before the first.
func (n *Node) Placement() *Placement {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.placement
}

// Stats implements AdminSource: the counters of the current run, or of the last one.
func (n *Node) Stats() []actor.StageStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.run != nil {
		return n.run.Stats()
	}
	return n.prevStats
}

// AdminAddr returns the address the admin endpoint listens on, "" without one.
func (n *Node) AdminAddr() string {
	if n.admin == nil {
		return ""
	}
	return n.admin.Addr().String()
}

// ErrLeft is what Run returns on a node that left the cluster (Leave) while its job ran.
var ErrLeft = errors.New("the node left the cluster")

// errMembershipChanged ends a run when the member list changes.
var errMembershipChanged = errors.New("the cluster's membership changed")

// Run runs job (named name, with keyGroups key groups) on the cluster until it completes,
// ctx ends, or it fails. build makes a fresh job for each run, with the option given to it
// (a graph.JobOption: func(*actor.Config)), which places the job's identities over the
// current members; the job must take checkpoints into a store every node reaches, since a
// run starts from the newest complete checkpoint there. When the member list changes
// (a node joins, leaves or fails), every node stops its run, waits for the list to settle,
// and starts again from the newest checkpoint with the new placement: the identities whose
// owner changed move, and exactly-once output holds through two-phase sinks. With
// NodeConfig.Fence each run has an epoch its coordinator claims, and every node restores
// the checkpoint the coordinator chose; with NodeConfig.Quorum a node that sees too few
// members runs nothing until they are back.
func (n *Node) Run(ctx context.Context, name string, keyGroups int, build func(option func(*actor.Config)) (JobRun, error)) error {
	failures := 0
	var lastEpoch uint64 // the fence epoch of this node's last run
	for attempt := 1; ; attempt++ {
		expect := n.cfg.Expect
		if attempt > 1 {
			expect = 1 // the job has started: it goes on with whoever is left
		}
		members, err := n.settle(ctx, expect)
		if err != nil {
			return err
		}
		ids := make([]string, len(members))
		addrs := make(map[string]string, len(members))
		for i, m := range members {
			ids[i], addrs[m.NodeID] = m.NodeID, m.RemoteAddr
		}
		self := n.members.Self().NodeID
		p, err := NewPlacement(self, ids, Job(name, keyGroups))
		if err != nil {
			return fmt.Errorf("run %s: %w", name, err)
		}
		option, run := RunOn(n.sys, p, name, addrs)
		if n.cfg.Fence == nil && n.cfg.FenceDir != "" && run.Coordinator == "" {
			fence := NewDirFence(n.cfg.FenceDir, name)
			token := fmt.Sprintf("%s %s %d %d", self, p.Epoch(), attempt, time.Now().UnixNano())
			if err := fence.Claim(token); err != nil {
				return fmt.Errorf("run %s: %w", name, err)
			}
			run.Fence = func() error { return fence.Check(token) }
		}
		var job JobRun
		var start *runStart // published once the run is under way, on its coordinator
		var fenceEpoch uint64
		if n.cfg.Fence != nil {
			job, start, err = n.buildFenced(ctx, name, ids, p, run, lastEpoch, func() (JobRun, error) { return build(option) })
			if err == nil {
				fenceEpoch = uint64(run.Epoch)
				lastEpoch = max(lastEpoch, fenceEpoch)
			}
		} else {
			job, err = build(option)
			if err != nil {
				err = fmt.Errorf("run %s: build: %w", name, err)
			}
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrLeft):
			return err
		case errors.Is(err, errMembershipChanged):
			n.logger.Info("membership changed before the run started: it starts again", "job", name, "attempt", attempt)
			continue
		default:
			if failures++; failures >= n.cfg.MaxFailures {
				return fmt.Errorf("run %s: %d runs in a row failed, the last: %w", name, failures, err)
			}
			n.logger.Warn("the run could not start: it starts again", "job", name, "attempt", attempt, "failures", failures, "err", err)
			continue
		}
		n.mu.Lock()
		n.placement, n.run = p, job
		n.mu.Unlock()
		n.ran = true
		n.logger.Info("run starts", "job", name, "attempt", attempt, "members", ids, "epoch", p.Epoch(),
			"key_groups_here", len(p.Table(name, keyGroups)[self]), "coordinator", p.Owner(name, 0), "fence_epoch", fenceEpoch)

		runCtx, cancel := context.WithCancelCause(ctx)
		if start != nil {
			n.starts.publish(*start, cancel)
		}
		changes := n.members.Changes()
		var watchers sync.WaitGroup
		var fenced <-chan struct{}
		if n.cfg.Fence != nil {
			fenced = n.cfg.Fence.Fenced()
			watchers.Go(func() { watchFence(runCtx, cancel, n.cfg.Fence) })
		}
		watchers.Go(func() { n.watch(runCtx, cancel, changes, job, ids) })
		err = job.Run(runCtx)
		cause := context.Cause(runCtx)
		cancel(nil)
		watchers.Wait()
		n.starts.withdraw(name)
		n.mu.Lock()
		n.run, n.prevStats = nil, job.Stats()
		n.mu.Unlock()
		isFenced := errors.Is(cause, errFencedOff)
		if fenced != nil {
			select {
			case <-fenced:
				isFenced = true
			default:
			}
		}
		switch {
		case isFenced:
			n.logger.Warn("fenced off: a newer run holds the job, so this run commits nothing more; the node steps down and waits for the next run", "job", name, "attempt", attempt, "fence_epoch", fenceEpoch, "err", err)
		case err == nil:
			n.logger.Info("job complete", "job", name, "attempt", attempt)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, actor.ErrHandedOff) && n.leaving.Load():
			n.logger.Info("handed off: the node leaves", "job", name, "attempt", attempt, "at", err)
			return ErrLeft
		case errors.Is(err, actor.ErrHandedOff):
			n.logger.Info("membership changed: the run stopped at a handoff checkpoint, and starts again from it", "job", name, "attempt", attempt, "at", err)
		case errors.Is(cause, errMembershipChanged):
			n.logger.Info("membership changed: the run stops, and starts again from the newest checkpoint", "job", name, "attempt", attempt)
		case errors.Is(cause, errRunLeft):
			n.logger.Info("a node left the run: it stops, and starts again from the newest checkpoint", "job", name, "attempt", attempt)
		default:
			if failures++; failures >= n.cfg.MaxFailures {
				return fmt.Errorf("run %s: %d runs in a row failed, the last: %w", name, failures, err)
			}
			n.logger.Warn("the run failed: it starts again from the newest checkpoint", "job", name, "attempt", attempt, "failures", failures, "err", err)
			continue
		}
		failures = 0
	}
}

// errFencedOff ends a run whose commit found a newer epoch in the fence.
var errFencedOff = errors.New("fenced off: a newer run holds the job")

// buildFenced builds this node's part of a fenced run over members ids: on the
// coordinator, it claims a new epoch, builds (which chooses the checkpoint to restore) and
// returns the start to publish; elsewhere it asks the coordinator for the start of a run
// newer than epoch left, enters its epoch and builds, restoring the checkpoint the
// coordinator chose. run.Epoch becomes the fence's
// epoch, which names the run's actors, so no message of another run reaches them.
func (n *Node) buildFenced(ctx context.Context, name string, ids []string, p *Placement, run *actor.ClusterRun, left uint64, build func() (JobRun, error)) (JobRun, *runStart, error) {
	fence := n.cfg.Fence
	if run.Coordinator == "" {
		epoch, record, err := fence.Claim(ctx, fmt.Sprintf("%s (members %s)", p.Self(), strings.Join(ids, ",")))
		if err != nil {
			return nil, nil, fmt.Errorf("run %s: claim the fence: %w", name, err)
		}
		run.Epoch = int64(epoch)
		if err := fence.Enter(epoch, record, math.MaxInt64); err != nil {
			return nil, nil, fmt.Errorf("run %s: %w", name, err)
		}
		job, err := build()
		if err != nil {
			return nil, nil, fmt.Errorf("run %s: build: %w", name, err)
		}
		restore := restoredID(job)
		if err := fence.Enter(epoch, record, restore); err != nil {
			return nil, nil, fmt.Errorf("run %s: %w", name, err)
		}
		n.logger.Info("claimed the fence: the run's epoch and restore point go to every node", "job", name, "fence_epoch", epoch, "restore", restore)
		return job, &runStart{Job: name, Members: ids, Epoch: epoch, Record: record, Restore: restore}, nil
	}
	st, err := n.askStart(ctx, run.Coordinator, name, ids, left, run.StartTimeout+30*time.Second)
	if err != nil {
		if errors.Is(err, errMembershipChanged) || ctx.Err() != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("run %s: %w", name, err)
	}
	run.Epoch = int64(st.Epoch)
	if err := fence.Enter(st.Epoch, st.Record, st.Restore); err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", name, err)
	}
	job, err := build()
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: build: %w", name, err)
	}
	if got := restoredID(job); got != st.Restore {
		return nil, nil, fmt.Errorf("run %s: the coordinator restores checkpoint %d, this node found %d", name, st.Restore, got)
	}
	return job, nil, nil
}

// restoredID returns the checkpoint job restores, 0 for none.
func restoredID(job JobRun) int64 {
	if aj := jobruntime.Of(job); aj != nil && aj.Config().Restore != nil {
		return aj.Config().Restore.ID
	}
	return 0
}

// handoffTimeout bounds a handoff checkpoint: past it, the run stops anyway and the next one
// starts from the newest checkpoint.
const handoffTimeout = 10 * time.Second

// watch ends the run of job, which started with members, when the member list changes: at
// a handoff checkpoint when every member is still there (a node joined), at once when one is
// gone (it failed or left: its instances cannot take part in a checkpoint).
func (n *Node) watch(ctx context.Context, cancel context.CancelCauseFunc, changes <-chan struct{}, job JobRun, members []string) {
	select {
	case <-changes:
	case <-ctx.Done():
		return
	}
	h := jobruntime.Of(job) // a *graph.Job can end its run at a handoff checkpoint
	ok := h != nil
	if ok {
		now := map[string]bool{}
		for _, m := range n.members.Members() {
			now[m.NodeID] = true
		}
		for _, id := range members {
			ok = ok && now[id]
		}
	}
	if ok {
		hctx, stop := context.WithTimeout(ctx, handoffTimeout)
		err := h.Handoff(hctx)
		stop()
		if err == nil {
			return // the run stops with actor.ErrHandedOff
		}
		n.logger.Warn("handoff failed: the run stops without it", "err", err)
	}
	cancel(errMembershipChanged)
}

// settle waits until the cluster has at least expect members, and the quorum, and its
// member list has not changed for Settle, and returns that list. Below the quorum the node
// is paused, and says so.
func (n *Node) settle(ctx context.Context, expect int) ([]Member, error) {
	changes := n.members.Changes()
	members := n.members.Members()
	timer := time.NewTimer(n.cfg.Settle)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case _, ok := <-changes:
			if !ok {
				return nil, ErrLeft
			}
			members = n.members.Members()
			timer.Reset(n.cfg.Settle)
		case <-timer.C:
			now := n.members.Members()
			if !slices.EqualFunc(now, members, func(a, b Member) bool { return a.NodeID == b.NodeID && a.RemoteAddr == b.RemoteAddr }) {
				members = now
				timer.Reset(n.cfg.Settle)
				continue
			}
			quorate := len(members) >= n.cfg.Quorum
			switch {
			case !quorate && !n.paused && !n.ran:
				n.logger.Info("waiting for members", "have", len(members), "quorum", n.cfg.Quorum)
			case !quorate && !n.paused:
				n.paused = true
				n.logger.Warn("paused: fewer members than the quorum, so this node runs nothing and commits nothing until a majority is back",
					"members", idsOf(members), "have", len(members), "quorum", n.cfg.Quorum)
			case quorate && n.paused:
				n.paused = false
				n.logger.Info("quorum is back: the job resumes", "members", idsOf(members), "have", len(members), "quorum", n.cfg.Quorum)
			}
			if quorate && len(members) >= expect {
				return members, nil
			}
			if !quorate && n.finished(ctx) {
				n.logger.Info("the job has finished (its final checkpoint is committed): this node finishes committing its output without a quorum", "members", idsOf(members))
				return members, nil
			}
			if quorate {
				n.logger.Info("waiting for members", "have", len(members), "expect", expect)
			}
			timer.Reset(n.cfg.Settle)
		}
	}
}

// finished reports whether the fence says the job has finished: its final checkpoint is
// committed, and a run only recovers (commits what is pending) and ends.
func (n *Node) finished(ctx context.Context) bool {
	if n.cfg.Fence == nil {
		return false
	}
	newest, err := n.cfg.Fence.Newest(ctx)
	return err == nil && newest == actor.FinalCheckpoint
}

// warnAndAbove passes on records at Warn and above: Proto.Actor logs every start and
// connection at Info.
type warnAndAbove struct{ slog.Handler }

func (h warnAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h warnAndAbove) WithAttrs(as []slog.Attr) slog.Handler {
	return warnAndAbove{h.Handler.WithAttrs(as)}
}
func (h warnAndAbove) WithGroup(name string) slog.Handler {
	return warnAndAbove{h.Handler.WithGroup(name)}
}

// RunOn returns the job option that makes a run of job this node's part (sys is its actor
// system, with its remote started) of a run over p's nodes, whose transport addresses addrs
// gives by node id, and the run's cluster settings (for a Fence). Every node's run must be
// made from the same member list. The coordinator is the owner of key group 0.
func RunOn(sys *pa.ActorSystem, p *Placement, job string, addrs map[string]string) (func(*actor.Config), *actor.ClusterRun) {
	coordinator := addrs[p.Owner(job, 0)]
	if p.Owner(job, 0) == p.Self() {
		coordinator = ""
	}
	var others []string
	for _, id := range p.Nodes() {
		if id != p.Self() {
			others = append(others, addrs[id])
		}
	}
	run := &actor.ClusterRun{System: sys, Epoch: int64(uint64(p.Epoch()) >> 1), Coordinator: coordinator, Nodes: others}
	return func(c *actor.Config) {
		c.Placement = remotePlacement{p: p, addrs: addrs}
		c.Cluster = run
	}, run
}

// remotePlacement turns the node ids of a Placement into the transport addresses the
// runtime sends to.
type remotePlacement struct {
	p     *Placement
	addrs map[string]string
}

func (r remotePlacement) Node(id actor.Identity) string {
	node := r.p.Node(id)
	if node == "" {
		return ""
	}
	return r.addrs[node]
}
