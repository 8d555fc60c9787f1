package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
)

// RunConfig configures a node that runs a graph with RunGraph: where it listens, how it
// joins, where its checkpoints go and how it is secured. Flags registers every field as a
// command-line flag, so a program's main needs no flag code of its own. The zero value
// (with Store set) is a single node on loopback; every zero field has a stated default.
type RunConfig struct {
	// NodeID names the node: unique in the cluster and stable across restarts, since
	// placement hashes it. Default: Bind. (-id)
	NodeID string
	// Bind is the gossip address host:port (UDP and TCP), an IP address. Default
	// 127.0.0.1:7946. Beyond loopback, gossip needs GossipKey or Insecure. (-bind)
	Bind string
	// Advertise is the IP address peers reach this node at, for gossip and the actor
	// transport; required when Bind or Remote listens on every interface (0.0.0.0).
	// Default: the bind addresses' hosts. (-advertise)
	Advertise string
	// Remote is the actor transport's address host:port, where other nodes send records
	// and barriers for the key groups this node owns. Default: Bind's host, any free port
	// (a firewall wants a fixed one). Beyond loopback it needs TLS or Insecure. (-remote)
	Remote string
	// Join lists gossip addresses of nodes to join through; one that answers is enough.
	// None: the node starts a cluster that others join. (-join a,b)
	Join []string
	// Expect is how many members the node waits for before the job's first run; later
	// runs go on with whoever is left. Default 1. (-expect)
	Expect int
	// Store is where the job keeps its checkpoints, its runs' fence and (through
	// JSONLSink) its output, reached by every node: a URL of an object store
	// (s3://bucket?endpoint=...&region=...[&prefix=jobs/NAME/], file:///dir), or a
	// directory (one machine, or a shared file system). One job per store (or prefix); see
	// OpenStore. Required. (-store)
	Store string
	// Quorum is how many members a node must see to run the job (static quorum); with
	// fewer it pauses and commits nothing until enough are back. Default: with an object
	// store, a majority of Expect; with a directory, 0 (none). (-quorum)
	Quorum int
	// Checkpoint is how often the job takes a checkpoint: shorter loses less work on a
	// failure and commits two-phase sinks' output sooner; longer costs less. Default 1s.
	// (-checkpoint)
	Checkpoint time.Duration
	// KeyGroups is how many key groups the job's keyed state is split into (Flink's max
	// parallelism): the unit that moves between nodes. It cannot change without losing
	// state. Default 128. (-key-groups)
	KeyGroups int
	// Parallelism is how many splits each source is read in (and so how many nodes can
	// read a source at once). Every node must use the same: it is part of the plan.
	// Default 4, not the machine's core count, which differs between machines.
	// (-parallelism)
	Parallelism int
	// TLSCert, TLSKey and TLSCA are PEM files: the node's certificate and key and the CA
	// that signs every node's, for mutual TLS (1.3) on the actor transport. All or none.
	// (-tls-cert, -tls-key, -tls-ca)
	TLSCert, TLSKey, TLSCA string
	// GossipKey encrypts and authenticates gossip (AES-GCM): 16, 24 or 32 bytes, the same
	// on every node. (-gossip-key HEX)
	GossipKey []byte
	// Admin is the admin HTTP endpoint's address host:port; "off" for none. Default
	// 127.0.0.1:0 (loopback, any port). Plain HTTP without authentication. (-admin)
	Admin string
	// Insecure allows the actor transport without TLS and gossip without a key beyond
	// loopback: only for a trusted network. (-insecure)
	Insecure bool
	// Settle is how long membership must stay the same before a run starts. Default 2s
	// (1s on loopback). (-settle)
	Settle time.Duration
	// MaxFailures is how many runs in a row may fail before the node gives up. Default 3.
	// (-max-failures)
	MaxFailures int
	// MaxMessageSize bounds one gRPC message of the actor transport, in bytes. Default
	// DefaultMaxMessageSize (64 MiB). (-max-message-size)
	MaxMessageSize int
	// Logger receives the node's log. nil: slog.Default().
	Logger *slog.Logger
}

// Flags registers c's fields as flags of fs, with their defaults filled in: a main calls
// it, then fs.Parse, then RunGraph with c.
func (c *RunConfig) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.NodeID, "id", c.NodeID, "node `id`, unique and stable (default: the -bind address)")
	fs.StringVar(&c.Bind, "bind", or(c.Bind, "127.0.0.1:7946"), "gossip `address` host:port (UDP and TCP)")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "`IP` peers reach this node at (needed when binding 0.0.0.0)")
	fs.StringVar(&c.Remote, "remote", c.Remote, "actor transport `address` host:port (default: the -bind host, any port)")
	fs.Func("join", "comma-separated gossip `addresses` of nodes to join through", func(s string) error {
		c.Join = nil
		for a := range strings.SplitSeq(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.Join = append(c.Join, a)
			}
		}
		return nil
	})
	fs.IntVar(&c.Expect, "expect", max(c.Expect, 1), "members to wait for before the job starts")
	fs.StringVar(&c.Store, "store", c.Store, "checkpoint store: a shared `DIR`, or a URL (s3://bucket?endpoint=...&region=...)")
	fs.IntVar(&c.Quorum, "quorum", c.Quorum, "members a node must see to run the job (default: with an object store, a majority of -expect)")
	fs.DurationVar(&c.Checkpoint, "checkpoint", orDuration(c.Checkpoint, time.Second), "checkpoint `interval`")
	fs.IntVar(&c.KeyGroups, "key-groups", orInt(c.KeyGroups, 128), "key groups of the job (cannot change without losing state)")
	fs.IntVar(&c.Parallelism, "parallelism", orInt(c.Parallelism, 4), "splits per source, the same on every node")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "the node's TLS certificate `file` (PEM) for the actor transport")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "the node's TLS key `file` (PEM)")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "the CA `file` (PEM) that signs every node's certificate")
	fs.Func("gossip-key", "gossip encryption key: 16, 24 or 32 bytes in `hex`, the same on every node", func(s string) error {
		k, err := hex.DecodeString(s)
		if err != nil {
			return fmt.Errorf("not hex: %w", err)
		}
		c.GossipKey = k
		return nil
	})
	fs.StringVar(&c.Admin, "admin", or(c.Admin, "127.0.0.1:0"), "admin HTTP `address` host:port, or \"off\"")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow the transport without TLS and gossip without a key beyond loopback (trusted networks only)")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "how long membership must be still before a run starts (default 2s, 1s on loopback)")
	fs.IntVar(&c.MaxFailures, "max-failures", orInt(c.MaxFailures, 3), "failed runs in a row before the node gives up")
	fs.IntVar(&c.MaxMessageSize, "max-message-size", orInt(c.MaxMessageSize, DefaultMaxMessageSize), "largest gRPC message of the actor transport, in `bytes`")
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// validate checks c, fills in its defaults, and returns the node's configuration (without
// its plan, its fence or its logger's defaults). The network's security is checked by
// StartNode (NodeConfig.validateNetwork), so that every node is held to it.
func (c *RunConfig) validate() (NodeConfig, error) {
	c.Bind = or(c.Bind, "127.0.0.1:7946")
	c.NodeID = or(c.NodeID, c.Bind)
	c.Expect = max(c.Expect, 1)
	c.Checkpoint = orDuration(c.Checkpoint, time.Second)
	c.KeyGroups = orInt(c.KeyGroups, 128)
	c.Parallelism = orInt(c.Parallelism, 4)
	c.Admin = or(c.Admin, "127.0.0.1:0")
	c.MaxFailures = orInt(c.MaxFailures, 3)
	host, _, err := net.SplitHostPort(c.Bind)
	if err != nil {
		return NodeConfig{}, fmt.Errorf("run config: bind %q: %w", c.Bind, err)
	}
	c.Remote = or(c.Remote, net.JoinHostPort(host, "0"))
	tlsFiles := 0
	for _, f := range []string{c.TLSCert, c.TLSKey, c.TLSCA} {
		if f != "" {
			tlsFiles++
		}
	}
	switch {
	case c.Store == "":
		return NodeConfig{}, errors.New("run config: a checkpoint store is required (-store DIR or URL): a run starts from its newest checkpoint")
	case c.Quorum < 0:
		return NodeConfig{}, fmt.Errorf("run config: quorum %d: want 0 (the default) or more", c.Quorum)
	case c.Checkpoint < 0:
		return NodeConfig{}, fmt.Errorf("run config: checkpoint interval %v: want more than 0", c.Checkpoint)
	case c.KeyGroups < 1:
		return NodeConfig{}, fmt.Errorf("run config: key groups %d: want at least 1", c.KeyGroups)
	case c.Parallelism < 1:
		return NodeConfig{}, fmt.Errorf("run config: parallelism %d: want at least 1", c.Parallelism)
	case c.Settle < 0:
		return NodeConfig{}, fmt.Errorf("run config: settle %v: want 0 (the default) or more", c.Settle)
	case c.MaxFailures < 1:
		return NodeConfig{}, fmt.Errorf("run config: max failures %d: want at least 1", c.MaxFailures)
	case tlsFiles != 0 && tlsFiles != 3:
		return NodeConfig{}, errors.New("run config: the TLS certificate, key and CA files go together (-tls-cert, -tls-key, -tls-ca)")
	}
	nc := NodeConfig{
		Membership:     Config{NodeID: c.NodeID, BindAddr: c.Bind, Seeds: c.Join, Key: c.GossipKey},
		RemoteAddr:     c.Remote,
		Advertise:      c.Advertise,
		Insecure:       c.Insecure,
		MaxMessageSize: c.MaxMessageSize,
		Settle:         c.Settle,
		Expect:         c.Expect,
		MaxFailures:    c.MaxFailures,
	}
	if c.Admin != "off" {
		nc.AdminAddr = c.Admin
	}
	if isLoopback(c.Bind) {
		nc.Membership.Profile = Loopback
	}
	if tlsFiles == 3 {
		if nc.ServerTLS, nc.ClientTLS, err = LoadMutualTLS(c.TLSCert, c.TLSKey, c.TLSCA); err != nil {
			return NodeConfig{}, fmt.Errorf("run config: %w", err)
		}
	}
	return nc, nil
}

// LoadMutualTLS returns the server and client TLS configurations of mutual TLS 1.3 for
// NodeConfig.ServerTLS and ClientTLS: each node shows its certificate (PEM files certFile,
// keyFile), and trusts the certificates the CA in caFile signed.
func LoadMutualTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("load TLS CA %s: no certificate in it", caFile)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	return server, client, nil
}

// RunGraph runs a graph as one node of a cluster, until the job completes (nil), ctx ends
// (the node hands its key groups off at a checkpoint, leaves, and RunGraph returns
// ErrLeft), or it fails. Every node runs the same program with its own RunConfig.
//
// newGraph builds the graph; it is called once per run (a membership change starts a new
// run), so that sinks and sources are fresh, and must build the same graph every time. It
// gets the job's store (cfg.Store, opened): JSONLSink writes the job's output there, so
// that nodes need no shared directory. RunGraph adds the job options Parallelism,
// MaxKeyGroups (from cfg) and Checkpoints (into the store) before opts; opts must not set
// Checkpoints or MaxKeyGroups.
//
// Before it joins, the node computes its plan's Fingerprint and publishes it; a node that
// meets another with a different plan refuses it, and RunGraph returns the
// *PlanMismatchError without running anything.
func RunGraph(ctx context.Context, cfg RunConfig, newGraph func(store *Store) (*graph.Graph, error), opts ...graph.JobOption) error {
	nc, err := cfg.validate()
	if err != nil {
		return err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	nc.Logger, nc.Membership.Logger = logger, logger
	store, err := OpenStore(ctx, cfg.Store, "")
	if err != nil {
		return fmt.Errorf("run graph: %w", err)
	}
	defer store.Close()
	store.configure(&nc)
	if nc.Quorum = cfg.Quorum; nc.Quorum == 0 && store.InBucket() {
		nc.Quorum = cfg.Expect/2 + 1
	}
	g, err := newGraph(store)
	if err != nil {
		return fmt.Errorf("run graph: build the graph: %w", err)
	}
	name := g.Name()
	jobOpts := append([]graph.JobOption{graph.Parallelism(cfg.Parallelism), graph.MaxKeyGroups(cfg.KeyGroups), graph.Logger(logger)}, opts...)
	jobOpts = append(jobOpts, graph.Checkpoints(store.Checkpoints(), cfg.Checkpoint))
	plan, err := g.Plan(jobOpts...)
	if err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	for _, v := range plan.Vertices {
		if v.Kind == "keyed" && v.Instances != cfg.KeyGroups {
			return fmt.Errorf("run %s: stage %q has %d key groups, the cluster places %d: set them with RunConfig.KeyGroups (-key-groups), not graph.MaxKeyGroups",
				name, v.Name, v.Instances, cfg.KeyGroups)
		}
	}
	fp := Fingerprint(plan, cfg.KeyGroups)
	nc.Membership.Meta.Plan = fp

	node, err := StartNode(ctx, nc)
	if err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	defer node.Close()
	logger.Info("node started", "id", cfg.NodeID, "job", name, "plan", fp, "store", store.String(), "quorum", nc.Quorum, "gossip", node.Self().Addr,
		"remote", node.Self().RemoteAddr, "admin", node.AdminAddr())

	// When ctx ends, the node hands off and leaves; the run, which must outlive ctx for
	// that, is cancelled only if the handoff does not end it in time.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	left := make(chan struct{})
	go func() {
		defer close(left)
		select {
		case <-ctx.Done():
			leaveCtx, stop := context.WithTimeout(runCtx, 2*handoffTimeout)
			if err := node.Leave(leaveCtx); err != nil {
				logger.Warn("leave", "err", err)
			}
			stop()
			select {
			case <-runCtx.Done():
			case <-time.After(handoffTimeout):
				cancel() // the run did not end after the node left
			}
		case <-runCtx.Done():
		}
	}()
	defer func() {
		cancel()
		<-left
	}()
	first := g
	var last *graph.Job
	stopProgress := func() {}
	defer func() { stopProgress() }()
	err = node.Run(runCtx, name, cfg.KeyGroups, func(option func(*actor.Config)) (JobRun, error) {
		g := first
		if g == nil {
			if g, err = newGraph(store); err != nil {
				return nil, err
			}
		}
		first = nil
		job, err := g.Build(slices.Concat(jobOpts, []graph.JobOption{option})...)
		if err != nil {
			return nil, err
		}
		if got := Fingerprint(job.Describe(), cfg.KeyGroups); got != fp {
			return nil, fmt.Errorf("the graph built for this run has plan %s, and the node announced plan %s: newGraph must build the same graph every time", got, fp)
		}
		stopProgress() // the previous run's
		stopProgress, last = logProgress(logger, job, progressInterval), job
		return job, nil
	})
	stopProgress()
	if last != nil {
		logger.Info("run ended", "id", cfg.NodeID, "summary", runreport.Summary(last))
	}
	return err
}

// progressInterval is how often a running node logs its progress.
const progressInterval = 10 * time.Second

// logProgress logs job's counts every interval while it runs: records in and out, dead
// letters, checkpoints. stop ends it and waits for it.
func logProgress(logger *slog.Logger, job *graph.Job, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t := runreport.Count(job)
				logger.Info("progress", "in", t.In, "out", t.Out, "dead_letters", t.DeadLetters, "late", t.Late,
					"checkpoints", t.Ckpt.Completed, "checkpoints_failed", t.Ckpt.Failed)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
