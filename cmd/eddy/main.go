// Command eddy runs one node of an Eddy cluster. Every node runs the same binary with the
// same job; point each at any node already running, and the job spreads itself over them.
// Lose a node, and the others take its key groups over from the last checkpoint, with the
// committed output still exactly once.
//
//	eddy -id n1 -bind 127.0.0.1:7001 -state /shared/state -in keys.jsonl -out /shared/out
//	eddy -id n2 -bind 127.0.0.1:7002 -join 127.0.0.1:7001 -state /shared/state -in keys.jsonl -out /shared/out
//
// The job is examples/exactlyonce's: for every input line {"key":K} it commits
// {"key":K,"seq":N} to -out, N being the count of K so far. -state and -out must be shared by
// all nodes (one machine, or a shared file system).
//
// Flags:
//
//	-id NAME        node id, unique and stable (default: the -bind address)
//	-bind ADDR      gossip address host:port (UDP and TCP; default 127.0.0.1:7946)
//	-join ADDRS     comma-separated gossip addresses of nodes to join through
//	-remote ADDR    actor transport address host:port (default 127.0.0.1:0: any port)
//	-admin ADDR     admin HTTP address (default 127.0.0.1:0; "off": none)
//	-state DIR      checkpoint store shared by all nodes (required)
//	-key HEX        gossip encryption key, 16, 24 or 32 bytes in hex
//	-tls-cert FILE, -tls-key FILE, -tls-ca FILE
//	                mutual TLS for the actor transport: the node's certificate and key, and
//	                the CA that signs every node's
//	-in FILE        input, JSON lines {"key":string} (required)
//	-out DIR        committed output (required)
//	-checkpoint D   checkpoint interval (default 1s)
//	-rate N         records per second (0: as fast as possible)
//	-expect N       members to wait for before the job starts (default 1)
//	-key-groups N   key groups of the job (default 128)
//	-max-failures N failed runs in a row (a node unreachable, say) before it gives up (default 3)
//	-max-dead-letters N  fail a run once it has more than N dead letters (default 0: no limit)
//
// It logs (log/slog, text, on stderr) a line "node started" with its admin address, and one
// per run. It exits 0 when the job has processed the whole input and committed it, and on
// SIGINT or SIGTERM it hands its key groups off at a checkpoint, leaves the cluster and
// exits 0.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/keycount"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

func main() {
	// SIGINT or SIGTERM: the node hands its key groups off at a checkpoint and leaves.
	leave, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(context.Background(), leave, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "eddy:", err)
		}
		os.Exit(1)
	}
}

// run runs the node until its job completes, ctx ends (it stops at once), or leave ends (it
// hands off and leaves the cluster: not an error).
func run(ctx, leave context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("eddy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "node id, unique and stable (default: the -bind address)")
	bind := fs.String("bind", "127.0.0.1:7946", "gossip address host:port")
	join := fs.String("join", "", "comma-separated gossip addresses of nodes to join through")
	remoteAddr := fs.String("remote", "127.0.0.1:0", "actor transport address host:port")
	admin := fs.String("admin", "127.0.0.1:0", `admin HTTP address host:port, or "off"`)
	state := fs.String("state", "", "checkpoint store `DIR`, shared by all nodes")
	keyHex := fs.String("key", "", "gossip encryption key: 16, 24 or 32 bytes in hex")
	certFile := fs.String("tls-cert", "", "the node's TLS certificate (PEM) for the actor transport")
	keyFile := fs.String("tls-key", "", "the node's TLS key (PEM)")
	caFile := fs.String("tls-ca", "", "the CA (PEM) that signs every node's certificate")
	in := fs.String("in", "", "input `FILE` of JSON lines {\"key\":string}")
	out := fs.String("out", "", "output `DIR`: committed output in DIR/*.jsonl")
	interval := fs.Duration("checkpoint", time.Second, "checkpoint interval")
	rate := fs.Int("rate", 0, "records per second, 0 = as fast as possible")
	expect := fs.Int("expect", 1, "members to wait for before the job starts")
	keyGroups := fs.Int("key-groups", 128, "key groups of the job")
	settle := fs.Duration("settle", 0, "how long membership must be still before a run starts (default 2s)")
	maxFailures := fs.Int("max-failures", 3, "failed runs in a row before the node gives up")
	maxDead := fs.Int64("max-dead-letters", 0, "fail a run once it has more than `N` dead letters (0: no limit; they are counted and reported)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *state == "" || *in == "" || *out == "":
		return errors.New("-state DIR, -in FILE and -out DIR are required")
	case *interval <= 0:
		return fmt.Errorf("-checkpoint %v: want a positive interval", *interval)
	case *rate < 0:
		return fmt.Errorf("-rate %d: want 0 or more", *rate)
	case *keyGroups < 1:
		return fmt.Errorf("-key-groups %d: want at least 1", *keyGroups)
	case (*certFile != "" || *keyFile != "" || *caFile != "") && (*certFile == "" || *keyFile == "" || *caFile == ""):
		return errors.New("-tls-cert, -tls-key and -tls-ca go together")
	}
	var key []byte
	if *keyHex != "" {
		var err error
		if key, err = hex.DecodeString(*keyHex); err != nil {
			return fmt.Errorf("-key: %w", err)
		}
	}
	if *id == "" {
		*id = *bind
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := cluster.NodeConfig{
		Membership: cluster.Config{NodeID: *id, BindAddr: *bind, Key: key, Logger: logger},
		RemoteAddr: *remoteAddr, Expect: *expect, Settle: *settle, Logger: logger, FenceDir: *state, MaxFailures: *maxFailures,
	}
	if *join != "" {
		cfg.Membership.Seeds = strings.Split(*join, ",")
	}
	if *admin != "off" {
		cfg.AdminAddr = *admin
	}
	if strings.HasPrefix(*bind, "127.") {
		cfg.Membership.Profile = cluster.Loopback
	}
	if *certFile != "" {
		var err error
		if cfg.ServerTLS, cfg.ClientTLS, err = loadTLS(*certFile, *keyFile, *caFile); err != nil {
			return err
		}
	}
	store, err := persistence.OpenDirCheckpoints(*state)
	if err != nil {
		return err
	}
	node, err := cluster.StartNode(ctx, cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	logger.Info("node started", "id", *id, "gossip", node.Self().Addr, "remote", node.Self().RemoteAddr, "admin", node.AdminAddr())

	const name = "keycount"
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The leaver is ours: it ends when the run does (runCtx), having left or not.
	runCtx, cancel := context.WithCancel(ctx)
	left := make(chan struct{})
	go func() {
		defer close(left)
		select {
		case <-leave.Done():
			if err := node.Leave(runCtx); err != nil {
				logger.Warn("leave", "err", err)
			}
		case <-runCtx.Done():
		}
	}()
	defer func() {
		cancel()
		<-left
	}()
	var last *graph.Job // the latest run's job, for the account at the end
	// Progress lines on a terminal, for the run under way.
	stopProgress := func() {}
	err = node.Run(runCtx, name, *keyGroups, func(option func(*actor.Config)) (cluster.JobRun, error) {
		sink, err := stream.TwoPhaseJSONLSink[keycount.Output](*out)
		if err != nil {
			return nil, err
		}
		g := keycount.Graph(name, *in, *rate, sink)
		job, err := g.Build(graph.Parallelism(runtime.GOMAXPROCS(0)), graph.MaxKeyGroups(*keyGroups), graph.Logger(quiet),
			graph.Checkpoints(store, *interval), graph.MaxDeadLetters(*maxDead), option)
		if err == nil {
			last = job
			stopProgress() // the previous run's
			stopProgress = runreport.Progress(stderr, job, 0)
		}
		return job, err
	})
	stopProgress()
	if last != nil {
		logger.Info("run ended", "id", *id, "summary", runreport.Summary(last))
	}
	if errors.Is(err, cluster.ErrLeft) {
		logger.Info("left the cluster", "id", *id)
		return nil
	}
	return err
}

// loadTLS returns the server and client TLS configurations of mutual TLS: each node shows
// its certificate, and trusts the certificates ca signed.
func loadTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
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
