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
//	-checkpoint DUR  take a checkpoint every DUR (0, the default: none; Flink's published
//	                 runs take one every second), and a final one at the end
//	-checkpoint-dir DIR  the checkpoint store: a directory (default: a temporary one, removed
//	                 at the end). A job starts from the newest checkpoint it finds there:
//	                 give each run a fresh directory, or its figures count part of a run.
//	-generator-rate  first time the generator alone, with the same splits, and report its
//	                 rate too (not part of seconds)
//	-cpuprofile FILE write a CPU profile of the job's run there
//	-key-groups N    key groups of the keyed stages (default 0: the engine's, 128). Each key
//	                 group is an actor with its own batches, so fewer key groups make fuller
//	                 batches for the keyed stages on one machine (see RESULTS.md)
//	-v               print each stage's counters on standard error
//
// It prints one JSON line: query, events, parallelism, seconds (the run of the job, from
// the first event generated to the last result written), events_per_sec and results (how
// many rows the query emitted). With -checkpoint it adds checkpoint_interval (seconds),
// checkpoints (how many completed, the final one included), checkpoints_failed,
// checkpoint_bytes (the state they wrote to the store, all of them together), and
// checkpoint_seconds_avg and checkpoint_seconds_max (from the trigger to the checkpoint
// saved, of the periodic ones: the final one is taken as the job ends). It also reports
// cpu_seconds, the CPU time the process used during the run (every goroutine, the garbage
// collector's too), and events_per_cpu_sec, events / cpu_seconds: the throughput per core,
// which depends less than events_per_sec on what else the machine runs (though contention
// makes the same work take more CPU). With -generator-rate it adds generator_events_per_sec
// and generator_cpu_seconds (the generator alone: P goroutines make the same events and
// drop them, before the job) and engine_events_per_cpu_sec, events / (cpu_seconds −
// generator_cpu_seconds): the throughput per core of the engine, past its input.
//
// Checkpoints hold the state of every stage as the query keeps it, on the heap (the
// Process, Window and WindowJoin state, and q4's aggregate): each instance writes a full
// snapshot of it into the checkpoint store (persistence.DirCheckpoints, one file per
// checkpoint), with each source split's position (the index of its next event).
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
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/persistence"
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

	// With -checkpoint.
	CheckpointInterval float64 `json:"checkpoint_interval,omitempty"` // seconds
	Checkpoints        int64   `json:"checkpoints,omitempty"`         // completed, the final one included
	CheckpointsFailed  int64   `json:"checkpoints_failed,omitempty"`
	CheckpointBytes    int64   `json:"checkpoint_bytes,omitempty"` // written to the store, all together
	CheckpointAvg      float64 `json:"checkpoint_seconds_avg,omitempty"`
	CheckpointMax      float64 `json:"checkpoint_seconds_max,omitempty"`

	// CPUSeconds is the CPU time the process used during the run (user and system, every
	// goroutine, the garbage collector's too); EventsPerCPUSec is events / CPUSeconds: the
	// throughput per core, as Flink's "Throughput/Cores" divides by the CPU it measured.
	CPUSeconds      float64 `json:"cpu_seconds"`
	EventsPerCPUSec float64 `json:"events_per_cpu_sec"`

	// With -generator-rate: the generator alone, making the same events on P goroutines
	// and dropping them. EngineEventsPerCPUSec is events / (CPUSeconds − GeneratorCPUSeconds):
	// the throughput per core of the engine, past the generator.
	GeneratorEventsPerSec float64 `json:"generator_events_per_sec,omitempty"`
	GeneratorCPUSeconds   float64 `json:"generator_cpu_seconds,omitempty"`
	EngineEventsPerCPUSec float64 `json:"engine_events_per_cpu_sec,omitempty"`
}

type config struct {
	query       query
	events      int64
	parallelism int
	out         string
	eventsOut   string
	verbose     bool
	checkpoint  time.Duration
	ckptDir     string
	genRate     bool
	cpuprofile  string
	keyGroups   int
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
	fs.DurationVar(&c.checkpoint, "checkpoint", 0, "take a checkpoint every `DUR` (0: none)")
	fs.StringVar(&c.ckptDir, "checkpoint-dir", "", "the checkpoint store's `DIR` (default: a temporary directory, removed at the end)")
	fs.BoolVar(&c.genRate, "generator-rate", false, "time the generator alone first and report its rate")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the job's run to `FILE`")
	fs.IntVar(&c.keyGroups, "key-groups", 0, "key groups of the keyed stages (0: the engine's default, 128)")
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
	if c.keyGroups < 0 {
		return c, fmt.Errorf("-key-groups %d: want 0 (the default) or more", c.keyGroups)
	}
	if c.checkpoint < 0 {
		return c, fmt.Errorf("-checkpoint %s: want 0 (none) or more", c.checkpoint)
	}
	if c.ckptDir != "" && c.checkpoint == 0 {
		return c, errors.New("-checkpoint-dir without -checkpoint: give the interval too")
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
	var genSecs, genCPU float64
	if c.genRate {
		genSecs, genCPU = generatorRun(source{gen: gen, n: c.events}, c.parallelism)
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
	opts := append(c.report.Options(), graph.Parallelism(c.parallelism), graph.Logger(logger), graph.DeadLetters(func(d stream.DeadLetter) {
		dead.Add(1)
		firstDead.Do(func() { deadReason = d.String() })
	}))
	if c.keyGroups > 0 {
		opts = append(opts, graph.MaxKeyGroups(c.keyGroups))
	}
	var store *meteredStore
	if c.checkpoint > 0 {
		var closeStore func()
		store, closeStore, err = openStore(c.ckptDir)
		if err != nil {
			return err
		}
		defer closeStore()
		opts = append(opts, graph.Checkpoints(store, c.checkpoint))
	}
	job, err := g.Build(opts...)
	if err != nil {
		return fmt.Errorf("build %s: %w", c.query.name, err)
	}
	stopProfile, err := startProfile(c.cpuprofile)
	if err != nil {
		return err
	}
	t0, cpu0 := time.Now(), cpuTime()
	err = runreport.Run(ctx, job, stderr, nil)
	secs, cpu := time.Since(t0).Seconds(), cpuTime()-cpu0
	if perr := stopProfile(); err == nil && perr != nil {
		err = perr
	}
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
		EventsPerSec: float64(c.events) / secs, Results: out.n.Load(),
		CPUSeconds: cpu, EventsPerCPUSec: float64(c.events) / cpu}
	if store != nil {
		r.addCheckpoints(c.checkpoint, job, store)
	}
	if c.genRate {
		r.GeneratorEventsPerSec, r.GeneratorCPUSeconds = float64(c.events)/genSecs, genCPU
		if cpu > genCPU {
			r.EngineEventsPerCPUSec = float64(c.events) / (cpu - genCPU)
		}
	}
	return json.NewEncoder(stdout).Encode(r)
}

// addCheckpoints fills in the checkpoint fields of r.
func (r *Result) addCheckpoints(interval time.Duration, job *graph.Job, store *meteredStore) {
	st := job.Checkpoints()
	r.CheckpointInterval = interval.Seconds()
	r.Checkpoints, r.CheckpointsFailed = st.Completed, st.Failed
	r.CheckpointBytes = store.bytes.Load()
	var sum time.Duration
	var n int
	for _, h := range job.CheckpointHistory() {
		if h.Error != "" {
			continue
		}
		n++
		sum += h.Duration
		r.CheckpointMax = max(r.CheckpointMax, h.Duration.Seconds())
	}
	if n > 0 {
		r.CheckpointAvg = sum.Seconds() / float64(n)
	}
}

// meteredStore is a checkpoint store that counts the bytes written to it.
type meteredStore struct {
	persistence.CheckpointStore
	bytes atomic.Int64
}

func (s *meteredStore) Write(ctx context.Context, n uint64, metadata []byte) error {
	err := s.CheckpointStore.Write(ctx, n, metadata)
	if err == nil {
		s.bytes.Add(int64(len(metadata)))
	}
	return err
}

// openStore opens the checkpoint store in dir, or in a new temporary directory that
// cleanup removes.
func openStore(dir string) (store *meteredStore, cleanup func(), err error) {
	cleanup = func() {}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "nexmark-checkpoints-"); err != nil {
			return nil, nil, fmt.Errorf("checkpoint directory: %w", err)
		}
		tmp := dir
		cleanup = func() { os.RemoveAll(tmp) }
	}
	s, err := persistence.OpenDirCheckpoints(dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return &meteredStore{CheckpointStore: s}, cleanup, nil
}

// startProfile starts a CPU profile into path ("": none); stop ends it.
func startProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}

// generatorRun makes the events of src with p splits on p goroutines, as the job's source
// instances do, drops them, and returns the seconds and the CPU seconds it took.
func generatorRun(src source, p int) (secs, cpu float64) {
	splits, _ := src.Splits(p)
	t0, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for _, sp := range splits {
		wg.Go(func() {
			s := sp.(*split)
			buf := make([]stream.Record[Event], 0, genBatch)
			for {
				var err error
				buf, err = s.Append(context.Background(), buf[:0], genBatch)
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(t0).Seconds(), cpuTime() - cpu0
}

// cpuTime returns the CPU time the process has used so far, user and system, in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// genBatch is how many events generatorRate makes at a time: the engine's batch size.
const genBatch = 512

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
