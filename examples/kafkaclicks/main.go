// Command kafkaclicks counts clicks per user in tumbling event-time windows, from one Kafka
// topic into another. With no flags it needs nothing outside: it starts an in-process broker
// (franz-go's kfake), produces the clicks itself, runs the job, and prints each window's
// count as it is committed:
//
//	go run ./examples/kafkaclicks
//	go run ./examples/kafkaclicks -brokers localhost:9092   # a real cluster
//
// The job: kafka.Source over topic "clicks" (4 partitions, watermarks per partition, 1s out
// of order, a partition idle for 2s stops holding time back) → KeyBy user → 10s tumbling
// windows → Count → kafka.ExactlyOnce into "click-counts", one JSON line per window
// {"user":U,"start":MS,"end":MS,"clicks":N}. It exits once the counts it read back add up
// to every click produced.
//
// Flags: -brokers ADDRS (default: an in-process broker), -clicks N (how many to produce,
// default 20000), -users N (default 25), -state DIR (checkpoints; default a temporary one).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
	"github.com/eddyflow/eddy/stream/kafka"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kafkaclicks:", err)
		}
		os.Exit(1)
	}
}

// Click is one input record's value; its event time is the Kafka record's timestamp.
type Click struct {
	User string `json:"user"`
	Page string `json:"page"`
}

// WindowCount is one output record's value.
type WindowCount struct {
	User   string `json:"user"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Clicks int64  `json:"clicks"`
}

const (
	inTopic, outTopic = "clicks", "click-counts"
	partitions        = 4
	window            = 10 * time.Second
	// epoch is the event time of the first generated click; clicks are 50ms apart.
	epoch = int64(1_800_000_000_000)
	step  = int64(50)
	// endUser marks the records that close the input: one per partition, an hour after
	// the last click, so that every window fires. They are not counted.
	endUser = ""
)

// clickAt is the i-th generated click and its event time.
func clickAt(i, users int) (Click, int64) {
	return Click{User: fmt.Sprintf("user-%02d", (i*7+i/3)%users), Page: fmt.Sprintf("/p/%d", i%13)}, epoch + int64(i)*step
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kafkaclicks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "Kafka brokers `ADDRS` (host:port,...); empty: an in-process broker")
	clicks := fs.Int("clicks", 20_000, "how many clicks to produce")
	users := fs.Int("users", 25, "how many users the clicks come from")
	stateDir := fs.String("state", "", "checkpoint `DIR` (default: a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *clicks < 1:
		return fmt.Errorf("-clicks %d: want at least 1", *clicks)
	case *users < 1:
		return fmt.Errorf("-users %d: want at least 1", *users)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := kafka.Config{ClientID: "kafkaclicks", Logger: logger}
	if *brokers == "" {
		broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, inTopic, outTopic))
		if err != nil {
			return fmt.Errorf("start the in-process broker: %w", err)
		}
		defer broker.Close()
		cfg.Brokers = broker.ListenAddrs()
		logger.Info("in-process broker", "addr", cfg.Brokers[0])
	} else {
		cfg.Brokers = strings.Split(*brokers, ",")
		if err := kafka.CreateTopics(ctx, cfg, partitions, inTopic, outTopic); err != nil {
			return err
		}
	}
	if *stateDir == "" {
		dir, err := os.MkdirTemp("", "kafkaclicks")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*stateDir = dir
	}
	store, err := persistence.OpenDirCheckpoints(*stateDir)
	if err != nil {
		return err
	}

	if err := produceClicks(ctx, cfg, *clicks, *users); err != nil {
		return err
	}
	logger.Info("produced", "clicks", *clicks, "topic", inTopic)

	sink, err := kafka.ExactlyOnce(cfg, outTopic, kafka.KeyedValues(stream.JSON[WindowCount](), func(w WindowCount) string { return w.User }), "kafkaclicks-counts")
	if err != nil {
		return err
	}
	g := graph.New("kafkaclicks")
	src := kafka.Source(cfg, []string{inTopic}, kafka.Values(stream.JSON[Click]()),
		kafka.Watermarks(stream.BoundedOutOfOrder[Click](time.Second)), kafka.IdleAfter(2*time.Second))
	input := graph.From(g, src, graph.Name("clicks")).Filter(func(c Click) bool { return c.User != endUser }, graph.Name("drop-end"))
	perUser := graph.KeyBy(input, func(c Click) string { return c.User }, graph.WithCodec(stream.JSON[Click]()))
	counts := graph.Window(perUser, stream.Tumbling(window), agg.Count[Click](), graph.Name("count"))
	graph.Map(counts, func(r stream.WindowResult[string, int64]) WindowCount {
		return WindowCount{User: r.Key, Start: r.Start, End: r.End, Clicks: r.Value}
	}, graph.Name("format")).To(sink, graph.Name("counts"))
	job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(8), graph.Logger(logger), graph.Checkpoints(store, 200*time.Millisecond))
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- job.Run(runCtx) }()
	readErr := readCounts(runCtx, cfg, int64(*clicks), stdout, logger)
	cancel()
	jobErr := <-errc
	if readErr != nil {
		return readErr
	}
	if jobErr != nil && !errors.Is(jobErr, context.Canceled) {
		return fmt.Errorf("run: %w", jobErr)
	}
	return nil
}

// produceClicks writes n clicks, keyed by user, then one end marker per partition.
func produceClicks(ctx context.Context, cfg kafka.Config, n, users int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(inTopic))
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	var failed error
	for i := range n {
		c, at := clickAt(i, users)
		v, _ := json.Marshal(c)
		cl.Produce(ctx, &kgo.Record{Key: []byte(c.User), Value: v, Timestamp: time.UnixMilli(at)}, func(_ *kgo.Record, err error) {
			if err != nil && failed == nil {
				failed = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce clicks: %w", err)
	}
	// The end markers go to each partition in turn: a client that picks partitions itself.
	ends, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(inTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer ends.Close()
	_, last := clickAt(n-1, users)
	v, _ := json.Marshal(Click{User: endUser})
	for p := range int32(partitions) {
		r := &kgo.Record{Partition: p, Value: v, Timestamp: time.UnixMilli(last + time.Hour.Milliseconds())}
		if err := ends.ProduceSync(ctx, r).FirstErr(); err != nil {
			return fmt.Errorf("produce the end of the clicks: %w", err)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce clicks: %w", err)
	}
	if failed != nil {
		return fmt.Errorf("produce clicks: %w", failed)
	}
	return nil
}

// readCounts reads the committed window counts, prints each as a JSON line and returns
// once they add up to total clicks.
func readCounts(ctx context.Context, cfg kafka.Config, total int64, stdout io.Writer, logger *slog.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(outTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return fmt.Errorf("reader: %w", err)
	}
	defer cl.Close()
	var sum, windows int64
	for sum < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read counts: %w (%d of %d clicks counted)", ctx.Err(), sum, total)
		}
		var perr error
		fetches.EachError(func(t string, p int32, err error) { perr = fmt.Errorf("read %s/%d: %w", t, p, err) })
		if perr != nil {
			return perr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var w WindowCount
			if err := json.Unmarshal(r.Value, &w); err != nil {
				logger.Warn("bad count record", "value", string(r.Value), "err", err)
				return
			}
			sum += w.Clicks
			windows++
			fmt.Fprintf(stdout, "%s\n", r.Value)
		})
	}
	logger.Info("all clicks counted", "clicks", sum, "windows", windows)
	return nil
}
