// Command clustered runs a user's own graph on an Eddy cluster: every process runs this same
// program, builds the same graph and calls cluster.RunGraph, which joins the others, checks
// that they all run the same plan, places the key groups over them and runs the job, from
// the newest checkpoint after any change of membership.
//
// The job: sensors report readings; per sensor, count the readings and sum their values
// in tumbling windows of event time (one second; -window). The input is a deterministic generator
// split into -parallelism ranges, so every node reads the splits it owns without shared
// files; the windows its key groups close are committed (a two-phase sink: exactly once,
// per checkpoint) into the store's out/ (cluster.JSONLSink: objects in a bucket, so nodes
// share nothing), or, with -out DIR, into this node's own directory. The union of every
// node's output is the job's output.
//
//	S3='s3://eddy?endpoint=http://127.0.0.1:8333&use_path_style=true&region=us-east-1'
//	clustered -id n1 -bind 127.0.0.1:7001 -store "$S3" -expect 3
//	clustered -id n2 -bind 127.0.0.1:7002 -join 127.0.0.1:7001 -store "$S3" -expect 3
//	clustered -id n3 -bind 127.0.0.1:7003 -join 127.0.0.1:7001 -store "$S3" -expect 3
//
// Flags of its own: -out DIR (default: the store's out/), -readings N (default 100000), -sensors N (default
// 50), -window D (default 1s), -rate N (readings per second this process reads, 0: as fast as possible). The cluster's flags
// are cluster.RunConfig's (-id, -bind, -advertise, -remote, -join, -expect, -store,
// -checkpoint, -key-groups, -parallelism, -tls-cert, -tls-key, -tls-ca, -gossip-key,
// -admin, -insecure, -settle, -max-failures, -max-message-size); see the README.
//
// Output: out/part-c<checkpoint>-i<instance>.jsonl in the store (or DIR/*.jsonl), one line
// per sensor and window:
// {"key":"sensor-07","start":0,"end":1000,"value":{"count":20,"sum":910}}.
// It exits 0 when the job has completed (or, on SIGINT/SIGTERM, when it has handed its key
// groups off and left), 1 on an error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Reading is one sensor reading.
type Reading struct {
	Sensor string `json:"sensor"`
	At     int64  `json:"at"` // event time, Unix ms
	Value  int64  `json:"value"`
}

// Stats is a window's aggregate of one sensor's readings.
type Stats struct {
	Count int64 `json:"count"`
	Sum   int64 `json:"sum"`
}

// statsAgg is the window's aggregator: count and sum, both of which can take a reading
// back (stream.Retracter).
type statsAgg struct{}

func (statsAgg) Zero() Stats                  { return Stats{} }
func (statsAgg) Add(s Stats, r Reading) Stats { return Stats{s.Count + 1, s.Sum + r.Value} }
func (statsAgg) Retract(s Stats, r Reading) Stats {
	return Stats{s.Count - 1, s.Sum - r.Value}
}
func (statsAgg) Merge(a, b Stats) Stats { return Stats{a.Count + b.Count, a.Sum + b.Sum} }
func (statsAgg) Result(s Stats) Stats   { return s }

// reading returns the i-th reading of the input: one reading every 10 ms of event time,
// from a sensor and with a value (0..99) that a multiplicative hash of i picks. Every node
// computes the same reading for the same i.
func reading(i int64, sensors int) Reading {
	h := uint64(i) * 0x9e3779b97f4a7c15
	return Reading{Sensor: fmt.Sprintf("sensor-%02d", (h>>40)%uint64(sensors)), At: i * 10, Value: int64((h >> 20) % 100)}
}

// Output is one line of the output.
type Output = stream.WindowResult[string, Stats]

// newGraph builds the job: readings → per sensor → one-second windows → the sink.
func newGraph(store *cluster.Store, out string, readings int64, sensors, rate int, window time.Duration) (*graph.Graph, error) {
	var sink stream.TwoPhaseSink[Output]
	var err error
	if out != "" {
		sink, err = stream.TwoPhaseJSONLSink[Output](out)
	} else {
		sink, err = cluster.JSONLSink[Output](store, "out")
	}
	if err != nil {
		return nil, err
	}
	g := graph.New("sensors")
	src := graph.From(g, stream.Generate(readings, func(i int64) Reading { return reading(i, sensors) }), graph.Name("readings"))
	if rate > 0 {
		src = graph.Map(src, pace[Reading](rate), graph.Name("pace"))
	}
	// In order within a split; the watermark of the window stage is the least of the
	// splits'.
	stamped := graph.Timestamps(src, func(r Reading) int64 { return r.At }, stream.BoundedOutOfOrder[Reading](0), graph.Name("event-time"))
	perSensor := graph.KeyBy(stamped, func(r Reading) string { return r.Sensor }, graph.WithCodec(stream.JSON[Reading]()))
	graph.Window(perSensor, stream.Tumbling(window), stream.Aggregator[Reading, Stats, Stats](statsAgg{}), graph.Name("stats")).
		To(sink, graph.Name("output"))
	return g, nil
}

// pace returns a map that holds the splits this process reads, together, to rate records
// per second; they call it from their own actors at once.
func pace[T any](rate int) func(T) T {
	start := time.Now()
	var n atomic.Int64
	return func(v T) T {
		if ahead := time.Duration(n.Add(1))*time.Second/time.Duration(rate) - time.Since(start); ahead > time.Millisecond {
			time.Sleep(ahead)
		}
		return v
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "clustered:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("clustered", flag.ContinueOnError)
	var cfg cluster.RunConfig
	cfg.Flags(fs)
	out := fs.String("out", "", "output `DIR` of this node: its committed windows in DIR/*.jsonl (default: the store's out/)")
	readings := fs.Int64("readings", 100_000, "readings in the input")
	sensors := fs.Int("sensors", 50, "sensors the readings come from")
	rate := fs.Int("rate", 0, "readings per second this process reads, 0 = as fast as possible")
	window := fs.Duration("window", time.Second, "length of the tumbling windows, in event time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *readings < 0 || *sensors < 1 || *rate < 0 || *window < time.Millisecond:
		return fmt.Errorf("-readings %d, -sensors %d, -rate %d, -window %v: want readings ≥ 0, sensors ≥ 1, rate ≥ 0, window ≥ 1ms",
			*readings, *sensors, *rate, *window)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err := cluster.RunGraph(ctx, cfg, func(store *cluster.Store) (*graph.Graph, error) {
		return newGraph(store, *out, *readings, *sensors, *rate, *window)
	})
	if errors.Is(err, cluster.ErrLeft) {
		cfg.Logger.Info("left the cluster")
		return nil
	}
	if err == nil {
		cfg.Logger.Info("job complete")
	}
	return err
}
