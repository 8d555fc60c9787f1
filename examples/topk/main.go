// Command topk prints the most frequent lines of a file and the number of distinct lines,
// in bounded memory, through the Eddy engine.
//
//	go run ./examples/topk -in items.txt -k 10
//
// Each line is an item; empty lines are skipped. It prints the top k items as JSON lines
// {"item":S,"count":N}, highest count first (ties by item), then one line {"distinct":N},
// the HyperLogLog estimate of the number of distinct items; on stderr it prints
// peak_heap_bytes N, the largest heap (runtime/metrics /memory/classes/heap/objects:bytes)
// seen while it ran, sampled every 5 ms.
//
// The file is read by one source split; graph.Rebalance spreads its lines, a batch at a
// time, over -parallelism instances, and the sink keeps one Space-Saving Top-K sketch and one
// HyperLogLog per instance, merged at the end. A count whose sketch cannot prove it exact
// (an item that lost its counter somewhere) is flagged on stderr with its error bound; with
// -capacity well above k, the heavy hitters of a skewed file keep their counters from their
// first occurrence and their counts are exact.
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
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/sketches"
	"github.com/eddyflow/eddy/stream"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	in          string
	k           int
	capacity    int
	parallelism int
	report      runreport.Flags
}

// run is the program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("topk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.in, "in", "", "the input file, one item per line (required)")
	fs.IntVar(&cfg.k, "k", 10, "how many items to print")
	fs.IntVar(&cfg.capacity, "capacity", 10_000, "Space-Saving counters per instance; at least k")
	fs.IntVar(&cfg.parallelism, "parallelism", max(2, runtime.GOMAXPROCS(0)), "instances counting in parallel; at least 2")
	cfg.report.Register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(stderr, "topk:", err)
		fs.Usage()
		return 2
	}
	peak := sampleHeap()
	res, err := count(ctx, cfg, stderr)
	fmt.Fprintf(stderr, "peak_heap_bytes %d\n", peak())
	if err != nil {
		fmt.Fprintln(stderr, "topk:", err)
		return 1
	}
	if err := write(stdout, stderr, res); err != nil {
		fmt.Fprintln(stderr, "topk:", err)
		return 1
	}
	return 0
}

func (c config) validate() error {
	var errs []error
	if c.in == "" {
		errs = append(errs, errors.New("-in is required"))
	}
	if c.k < 1 {
		errs = append(errs, fmt.Errorf("-k %d: want at least 1", c.k))
	}
	if c.capacity < c.k {
		errs = append(errs, fmt.Errorf("-capacity %d: want at least k (%d)", c.capacity, c.k))
	}
	if c.parallelism < 2 {
		errs = append(errs, fmt.Errorf("-parallelism %d: want at least 2", c.parallelism))
	}
	return errors.Join(errs...)
}

// result is what count finds.
type result struct {
	top      []sketches.Item
	distinct uint64
}

// partial is the sketches of one instance.
type partial struct {
	top *sketches.TopK
	hll *sketches.HyperLogLog
}

// sketchSink counts the lines of every batch into a partial it takes from a pool of one per
// instance, so that instances writing at once each count into their own, without a lock
// per line.
type sketchSink struct {
	free chan *partial
	all  []*partial
}

func newSketchSink(n, capacity int) (*sketchSink, error) {
	s := &sketchSink{free: make(chan *partial, n)}
	for range n {
		top, err := sketches.NewTopK(sketches.TopKConfig{Capacity: capacity})
		if err != nil {
			return nil, err
		}
		hll, err := sketches.NewHyperLogLog(sketches.HyperLogLogConfig{})
		if err != nil {
			return nil, err
		}
		p := &partial{top: top, hll: hll}
		s.all = append(s.all, p)
		s.free <- p
	}
	return s, nil
}

func (s *sketchSink) WriteBatch(recs []stream.Record[string]) error {
	p := <-s.free
	for _, r := range recs {
		p.top.Add(r.Value)
		p.hll.Add(r.Value)
	}
	s.free <- p
	return nil
}

func (s *sketchSink) Close() error { return nil }

// merged merges the partials; call it after the job has ended.
func (s *sketchSink) merged(k int) (result, error) {
	top, hll := s.all[0].top, s.all[0].hll
	for i, p := range s.all[1:] {
		if err := top.Merge(p.top); err != nil {
			return result{}, fmt.Errorf("merge the top-k of instance %d: %w", i+1, err)
		}
		if err := hll.Merge(p.hll); err != nil {
			return result{}, fmt.Errorf("merge the distinct count of instance %d: %w", i+1, err)
		}
	}
	return result{top: top.Top(k), distinct: hll.Estimate()}, nil
}

func count(ctx context.Context, cfg config, stderr io.Writer) (result, error) {
	// Open the file first, so that a missing one is a plain error naming it.
	f, err := os.Open(cfg.in)
	if err != nil {
		return result{}, err
	}
	f.Close()
	sink, err := newSketchSink(cfg.parallelism, cfg.capacity)
	if err != nil {
		return result{}, err
	}
	g := graph.New("topk")
	lines := graph.From(g, stream.Lines(cfg.in), graph.Name("lines"))
	spread := graph.Rebalance(lines, graph.Name("spread"))
	spread.Filter(func(s string) bool { return s != "" }, graph.Name("non-empty")).To(sink, graph.Name("sketch"))
	dead := 0
	var mu sync.Mutex
	job, err := g.Build(append(cfg.report.Options(), graph.Parallelism(cfg.parallelism), graph.Logger(slog.New(slog.DiscardHandler)),
		graph.DeadLetters(func(d stream.DeadLetter) {
			mu.Lock()
			dead++
			mu.Unlock()
		}))...)
	if err != nil {
		return result{}, err
	}
	if err := runreport.Run(ctx, job, stderr, nil); err != nil {
		return result{}, err
	}
	if dead > 0 {
		return result{}, fmt.Errorf("%d records could not be processed", dead)
	}
	return sink.merged(cfg.k)
}

func write(stdout, stderr io.Writer, res result) error {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, it := range res.top {
		if it.Error > 0 {
			fmt.Fprintf(stderr, "topk: the count of %q may be up to %d too high\n", it.Item, it.Error)
		}
		if err := enc.Encode(struct {
			Item  string `json:"item"`
			Count uint64 `json:"count"`
		}{it.Item, it.Count}); err != nil {
			return err
		}
	}
	return enc.Encode(struct {
		Distinct uint64 `json:"distinct"`
	}{res.distinct})
}

// sampleHeap samples the heap every 5 ms until the returned function is called, which stops
// the sampler, waits for it and returns the largest value seen.
func sampleHeap() func() uint64 {
	const name = "/memory/classes/heap/objects:bytes"
	s := []metrics.Sample{{Name: name}}
	var peak uint64
	read := func() {
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			peak = max(peak, s[0].Value.Uint64())
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		read()
		return peak
	}
}
