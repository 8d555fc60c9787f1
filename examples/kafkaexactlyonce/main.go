// Command kafkaexactlyonce counts records per key from a Kafka topic and writes, for every
// input record, {"key":K,"seq":N} (N the count of K so far, in partition order) to another
// topic, keyed by K, exactly once: kill it at any moment, start it again with the same
// flags, and a read_committed reader of the output sees every (K, N) once.
//
//	go run ./examples/kafkabroker -listen 127.0.0.1:9092 -topics in:4,out:4 &
//	go run ./examples/kafkaexactlyonce -brokers 127.0.0.1:9092 -in in -out out -state state -checkpoint 1s -idle-exit 5s
//
// Flags: -brokers ADDRS (comma-separated), -in TOPIC (values JSON {"key":K}), -out TOPIC,
// -state DIR (checkpoints), -checkpoint DUR (interval), -idle-exit DUR (exit 0 once no new
// input has arrived for DUR and everything read is committed), -group NAME (optional: the
// group the input offsets are committed to for lag monitoring, and the base of the
// transactional ids; default kafkaexactlyonce-IN-OUT).
//
// How: the input partitions are the source's splits, their offsets live in the checkpoints
// in -state; the per-key counts are keyed state in those checkpoints; the output goes
// through stream/kafka's exactly-once sink, one Kafka transaction per writer and checkpoint,
// committed when the checkpoint completes. On start the sink commits the transactions of
// complete checkpoints a killed run left open and aborts the others. A malformed input
// value is counted as a dead letter and logged with its partition:offset; the job goes on.
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
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/kafka"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kafkaexactlyonce:", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		os.Exit(1)
	}
}

// Input is an input record's value; Output an output record's.
type (
	Input struct {
		Key string `json:"key"`
	}
	Output struct {
		Key string `json:"key"`
		Seq int64  `json:"seq"`
	}
)

const (
	// parallelism of the job: the source splits share the input partitions.
	parallelism = 2
	// keyGroups is the number of key groups, hence of instances of the keyed stage and of
	// the sink fused into it: one transactional producer each. Fewer than the default 128
	// keeps the number of producers and transactions per checkpoint small.
	keyGroups = 8
)

// errIdle ends a run that has nothing left to do.
var errIdle = errors.New("idle: everything read is committed")

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kafkaexactlyonce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "Kafka brokers, `ADDRS` host:port,...")
	in := fs.String("in", "", "input `TOPIC` (values {\"key\":K})")
	out := fs.String("out", "", "output `TOPIC` (values {\"key\":K,\"seq\":N}, keyed by K)")
	state := fs.String("state", "", "checkpoint `DIR`")
	interval := fs.Duration("checkpoint", time.Second, "checkpoint interval")
	idleExit := fs.Duration("idle-exit", 10*time.Second, "exit once no input has arrived for this long and all is committed")
	group := fs.String("group", "", "group for courtesy offset commits and base of the transactional ids (default kafkaexactlyonce-IN-OUT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *brokers == "" || *in == "" || *out == "" || *state == "":
		return errors.New("-brokers, -in, -out and -state are required")
	case *interval <= 0:
		return fmt.Errorf("-checkpoint %v: want a positive interval", *interval)
	case *idleExit <= 0:
		return fmt.Errorf("-idle-exit %v: want a positive duration", *idleExit)
	case *in == *out:
		return fmt.Errorf("-in and -out are both %q", *in)
	}
	if *group == "" {
		*group = "kafkaexactlyonce-" + *in + "-" + *out
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := kafka.Config{Brokers: strings.Split(*brokers, ","), ClientID: "kafkaexactlyonce", Logger: logger}

	store, err := persistence.OpenDirCheckpoints(*state)
	if err != nil {
		return err
	}
	sink, err := kafka.ExactlyOnce(cfg, *out, kafka.KeyedValues(stream.JSON[Output](), func(o Output) string { return o.Key }), *group)
	if err != nil {
		return err
	}
	src := kafka.Source(cfg, []string{*in}, kafka.Values(stream.JSON[Input]()), kafka.CommitOffsetsTo(*group))

	g := graph.New("kafkaexactlyonce")
	records := graph.From(g, src, graph.Name("input"))
	counts := graph.Count(graph.KeyBy(records, func(i Input) string { return i.Key }, graph.WithCodec(stream.JSON[Input]())),
		graph.Name("count"), graph.Emit(stream.EmitEveryUpdate))
	graph.Map(counts, func(kv stream.KV[string, int64]) Output { return Output{Key: kv.Key, Seq: kv.Value} }, graph.Name("seq")).
		To(sink, graph.Name("output"))

	var deadLetters atomic.Int64
	job, err := g.Build(graph.Parallelism(parallelism), graph.MaxKeyGroups(keyGroups), graph.Logger(logger), graph.Checkpoints(store, *interval),
		graph.DeadLetters(func(d stream.DeadLetter) {
			deadLetters.Add(1)
			logger.Warn("dead letter", "stage", d.Stage, "reason", d.Reason)
		}))
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errc := make(chan error, 1)
	go func() { errc <- job.Run(runCtx) }()
	started := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	progress := time.Now()
	for {
		select {
		case err := <-errc:
			if errors.Is(context.Cause(runCtx), errIdle) {
				ss, ks := src.Stats(), sink.Stats()
				logger.Info("done", "read", ss.Records, "dead_letters", deadLetters.Load(), "committed", ks.Committed, "transactions", ks.Transactions)
				return nil
			}
			if err == nil {
				err = errors.New("the job ended on its own")
			}
			return fmt.Errorf("run: %w", err)
		case <-tick.C:
		}
		if err := sink.Err(); err != nil {
			// A broken transaction: stop, and let the next run recover.
			cancel(fmt.Errorf("output: %w", err))
			continue
		}
		ss, ks := src.Stats(), sink.Stats()
		last := ss.LastRecord
		if last.IsZero() {
			last = started
		}
		if time.Since(last) >= *idleExit && ss.Lag == 0 && ks.Committed == ss.Records {
			cancel(errIdle)
		}
		if time.Since(progress) >= 5*time.Second {
			progress = time.Now()
			logger.Info("progress", "read", ss.Records, "lag", ss.Lag, "dead_letters", deadLetters.Load(), "committed", ks.Committed, "transactions", ks.Transactions)
		}
	}
}
