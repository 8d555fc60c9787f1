// Command exactlyonce counts records per key and writes, for every input record,
// {"key":K,"seq":N}, N being the count of records with that key so far, exactly once: kill
// it at any moment, start it again with the same flags, and when it finally exits the
// committed output holds every (key, seq) once.
//
//	go run ./examples/exactlyonce -in keys.jsonl -out out -state state -checkpoint 1s
//
// Flags: -in FILE (JSON lines {"key":string}), -out DIR (committed output: DIR/*.jsonl;
// pending data lives in DIR/.pending), -state DIR (checkpoints), -checkpoint D (interval,
// default 1s), -rate N (records per second, 0 = as fast as possible), -parallelism P (a
// restart may use another: keyed state lives per key group, whatever the parallelism),
// -backend memory|badger (where the per-key counts live while it runs: memory, or a Badger
// database in DIR/badger; a restart may change it, since both write the same snapshots).
//
// How: the JSONL source rewinds to the offset of the newest intact checkpoint in -state,
// the per-key counts (graph.Count) reload from it, and the output goes through a two-phase
// sink (stream.TwoPhaseJSONLSink) whose transactions commit only when the checkpoint that closes
// them is saved; at the end of the input a final checkpoint commits the rest. A run that
// finds the final checkpoint commits what is pending and exits at once. It exits 0 once the
// whole input is processed and committed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/keycount"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "exactlyonce:", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		os.Exit(1)
	}
}

// Input and Output are the job's lines.
type (
	Input  = keycount.Input
	Output = keycount.Output
)

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("exactlyonce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "input `FILE` of JSON lines {\"key\":string}")
	out := fs.String("out", "", "output `DIR`: committed output in DIR/*.jsonl")
	state := fs.String("state", "", "checkpoint `DIR`")
	interval := fs.Duration("checkpoint", time.Second, "checkpoint interval")
	rate := fs.Int("rate", 0, "records per second, 0 = as fast as possible")
	parallelism := fs.Int("parallelism", max(2, runtime.GOMAXPROCS(0)), "parallelism; a restart may change it (state is per key group)")
	backend := fs.String("backend", "memory", "keyed state backend: memory, or badger (a database in -state DIR/badger)")
	microBatch := fs.Duration("micro-batch", 0, "run in micro-batches of this interval, each committed by a checkpoint (0: continuous, checkpoints every -checkpoint)")
	batchRecords := fs.Int("micro-batch-records", 10_000, "with -micro-batch: records a source split reads per batch at most")
	var report runreport.Flags
	report.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *in == "" || *out == "" || *state == "":
		return errors.New("-in FILE, -out DIR and -state DIR are required")
	case *interval <= 0:
		return fmt.Errorf("-checkpoint %v: want a positive interval", *interval)
	case *rate < 0:
		return fmt.Errorf("-rate %d: want 0 or more", *rate)
	case *parallelism < 1:
		return fmt.Errorf("-parallelism %d: want at least 1", *parallelism)
	case *backend != "memory" && *backend != "badger":
		return fmt.Errorf("-backend %q: want memory or badger", *backend)
	case *microBatch < 0:
		return fmt.Errorf("-micro-batch %v: want 0 or a positive interval", *microBatch)
	case *batchRecords < 1:
		return fmt.Errorf("-micro-batch-records %d: want at least 1", *batchRecords)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	store, err := persistence.OpenDirCheckpoints(*state)
	if err != nil {
		return err
	}
	sink, err := stream.TwoPhaseJSONLSink[Output](*out)
	if err != nil {
		return err
	}

	g := keycount.Graph("exactlyonce", *in, *rate, sink)

	opts := append(report.Options(), graph.Parallelism(*parallelism), graph.Logger(logger), graph.Checkpoints(store, *interval))
	if *microBatch > 0 {
		opts = append(opts, graph.MicroBatch(*microBatch), graph.MicroBatchRecords(*batchRecords))
	}
	if *backend == "badger" {
		db, err := persistence.OpenBadger(filepath.Join(*state, "badger"))
		if err != nil {
			return fmt.Errorf("open state backend: %w", err)
		}
		defer db.Close()
		opts = append(opts, graph.BadgerState(db))
	}
	job, err := g.Build(opts...)
	if err != nil {
		return err
	}
	if err := runreport.Run(ctx, job, stderr, nil); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}
