// Command nexmark runs the Nexmark benchmark's queries on Eddy, over events from a
// deterministic Nexmark generator, as defined by the nexmark/nexmark repository (the Flink
// one).
//
//	go run ./examples/nexmark -query q5 -events 10000000 -parallelism 2
//
// Flags:
//
//	-query Q         q0, q1, q2, q3, q4, q5, q7, q8 or q11 (default q0)
//	-events N        how many events to generate (default 10,000,000)
//	-parallelism P   source splits (default GOMAXPROCS)
//	-out FILE        write the query's results there as JSON lines (default: count them only,
//	                 as Flink's blackhole sink)
//	-events-out FILE write the generated events there as JSON lines, {"person":{...}},
//	                 {"auction":{...}} or {"bid":{...}}, in event order (not timed)
//	-seed S          the generator's seed (default 1)
//	-v               print each stage's counters on standard error
//
// It prints one JSON line: query, events, parallelism, seconds (the run of the job, from
// the first event generated to the last result written), events_per_sec and results (how
// many rows the query emitted).
//
// Events have the Nexmark schema and distributions: in every 50 events 1 person, 3 auctions,
// 46 bids; event i has dateTime base + i/10 ms (10,000 events per second of event time). Times
// are Unix milliseconds in events and results. Every query reads the events with watermarks
// 4 s behind the largest dateTime seen (the Nexmark DDL's "WATERMARK FOR dateTime AS
// dateTime - INTERVAL '4' SECOND"). See RESULTS.md for measurements and for where this departs
// from Nexmark.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/stream"
)

// watermarkDelay is how far the watermark trails the largest dateTime seen.
const watermarkDelay = 4 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "nexmark:", err)
		}
		os.Exit(1)
	}
}

// Result is the line nexmark prints.
type Result struct {
	Query        string  `json:"query"`
	Events       int64   `json:"events"`
	Parallelism  int     `json:"parallelism"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	Results      int64   `json:"results"`
}

type config struct {
	query       query
	events      int64
	parallelism int
	out         string
	eventsOut   string
	verbose     bool
	gen         GeneratorConfig
	report      runreport.Flags
}

func parse(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("nexmark", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := config{gen: DefaultGeneratorConfig()}
	name := fs.String("query", "q0", "the query: "+queryNames())
	c.report.Register(fs)
	fs.Int64Var(&c.events, "events", 10_000_000, "how many events to generate")
	fs.IntVar(&c.parallelism, "parallelism", runtime.GOMAXPROCS(0), "source splits")
	fs.StringVar(&c.out, "out", "", "write the results to this file as JSON lines")
	fs.StringVar(&c.eventsOut, "events-out", "", "write the generated events to this file as JSON lines")
	fs.BoolVar(&c.verbose, "v", false, "print each stage's counters on standard error")
	fs.Uint64Var(&c.gen.Seed, "seed", c.gen.Seed, "the generator's seed")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	q, ok := queryNamed(*name)
	if !ok {
		return c, fmt.Errorf("-query %q: want one of %s", *name, queryNames())
	}
	c.query = q
	if c.events < 0 {
		return c, fmt.Errorf("-events %d: want at least 0", c.events)
	}
	if c.parallelism < 1 {
		return c, fmt.Errorf("-parallelism %d: want at least 1", c.parallelism)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	gen, err := NewGenerator(c.gen)
	if err != nil {
		return err
	}
	if c.eventsOut != "" {
		if err := writeEvents(c.eventsOut, gen, c.events); err != nil {
			return err
		}
	}

	g := graph.New("nexmark-" + c.query.name)
	out := &output{path: c.out}
	if err := addQuery(g, source{gen: gen, n: c.events}, c.query, out); err != nil {
		return err
	}

	// Dead letters (late records among them) mean wrong results: count them, keep the first.
	var dead atomic.Int64
	var firstDead sync.Once
	var deadReason string
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	job, err := g.Build(append(c.report.Options(), graph.Parallelism(c.parallelism), graph.Logger(logger), graph.DeadLetters(func(d stream.DeadLetter) {
		dead.Add(1)
		firstDead.Do(func() { deadReason = d.String() })
	}))...)
	if err != nil {
		return fmt.Errorf("build %s: %w", c.query.name, err)
	}
	t0 := time.Now()
	err = runreport.Run(ctx, job, stderr, nil)
	secs := time.Since(t0).Seconds()
	if err != nil {
		return fmt.Errorf("run %s: %w", c.query.name, err)
	}
	if c.verbose {
		for _, st := range job.Stats() {
			fmt.Fprintf(stderr, "stage %s: instances %d, in %d, out %d, dead letters %d, batches %d\n",
				st.Stage, st.Instances, st.In, st.Out, st.DeadLetters, st.Batches)
		}
	}
	if n := dead.Load(); n > 0 {
		return fmt.Errorf("run %s: %d dead letters, the first: %s", c.query.name, n, deadReason)
	}
	r := Result{Query: c.query.name, Events: c.events, Parallelism: c.parallelism, Seconds: secs,
		EventsPerSec: float64(c.events) / secs, Results: out.n.Load()}
	return json.NewEncoder(stdout).Encode(r)
}

// addQuery adds to g the events of src, stamped with their dateTime and with watermarks
// watermarkDelay behind, and query q over them, with its results going to out.
func addQuery(g *graph.Graph, src stream.Source[Event], q query, out *output) error {
	events := graph.Timestamps(graph.From(g, src, graph.Name("generator")),
		Event.Time, stream.BoundedOutOfOrder[Event](watermarkDelay), graph.Name("dateTime"))
	q.build(events, out)
	return out.err
}

// writeEvents writes events [0, n) to path as JSON lines.
func writeEvents(path string, gen *Generator, n int64) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create events file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close events file: %w", cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range n {
		if err := enc.Encode(gen.Event(i)); err != nil {
			return fmt.Errorf("write event %d to %s: %w", i, path, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write events to %s: %w", path, err)
	}
	return nil
}
