// Command bench measures Eddy against a plain single-goroutine Go loop doing the same work in
// the same process, and checks that both get the same result.
//
//	go run ./examples/bench -scenario keyed-count -events 10000000 -parallelism 2
//
// Baseline and engine are timed -runs times each, alternately, and the medians are reported,
// because these machines are shared and noisy.
//
// With -checkpoint D the engine takes a checkpoint every D into a temporary directory (and
// a final one), to measure what checkpoints cost.
//
// It prints one JSON line: scenario, events, parallelism, seconds, events_per_sec,
// baseline_events_per_sec, ratio (engine / baseline throughput) and peak_heap_bytes (the
// largest live heap seen while the engine ran, sampled with runtime/metrics). It exits
// non-zero when the engine's result differs from the baseline's.
//
// Scenarios:
//   - stateless: value i*7 % 1000 for i in [0, N), times 2, kept when divisible by 3, summed.
//   - keyed-count: key uint64(i)*2654435761 % 10000, counted per key (with local
//     aggregation: partial counts cross the exchange; -local-aggregation=false sends every
//     record).
//   - backpressure: keyed-count, every update into a sink 100× slower per record than the
//     source; checks that every update arrived and the final counts are exact.
//   - large-state: N distinct keys (uint64(i)), each with a 100-byte value, the latest value
//     per key kept by an aggregate on the Badger state backend (state far larger than the
//     heap); the checksum of every key's value must equal the baseline's. Its baseline is a
//     plain loop over the same keys in Badger with the same options
//     (persistence.LargeStateOptions): per batch of 1,000 keys, one read transaction that
//     looks each up, then one write batch with the new values.
//   - window: 10,000 keys (key uint64(i)*2654435761 % 10000), event time i/100 ms, value
//     i % 7; count and sum per key in tumbling 1 s event-time windows, fired by the
//     watermark; the checksum and number of firings must equal the baseline's.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

type result struct {
	Scenario             string  `json:"scenario"`
	Events               int64   `json:"events"`
	Parallelism          int     `json:"parallelism"`
	Seconds              float64 `json:"seconds"`
	EventsPerSec         float64 `json:"events_per_sec"`
	BaselineEventsPerSec float64 `json:"baseline_events_per_sec"`
	Ratio                float64 `json:"ratio"`
	PeakHeapBytes        uint64  `json:"peak_heap_bytes"`
	Backend              string  `json:"backend"`
	Nodes                int     `json:"nodes"`
	// With -checkpoint: checkpoints completed (in the last run), the throughput of the same
	// engine without checkpoints, and what checkpoints cost: the median over runs of
	// 1 - (throughput with)/(throughput without), each run's two timed back to back.
	Checkpoints              int64   `json:"checkpoints,omitempty"`
	NoCheckpointEventsPerSec float64 `json:"no_checkpoint_events_per_sec,omitempty"`
	CheckpointCost           float64 `json:"checkpoint_cost,omitempty"`
}

func main() {
	scenario := flag.String("scenario", "keyed-count", "stateless, keyed-count, backpressure or window")
	events := flag.Int64("events", 10_000_000, "number of events")
	parallelism := flag.Int("parallelism", runtime.GOMAXPROCS(0), "source parallelism")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the engine runs to this file")
	runs := flag.Int("runs", 3, "time baseline and engine this many times each, alternately, and report the medians")
	checkpoint := flag.Duration("checkpoint", 0, "take checkpoints at this interval into a temporary directory (0: none), and time the engine without them too")
	nodes := flag.Int("nodes", 1, "run the engine on this many in-process nodes, talking over Proto.Actor remote on loopback")
	backend := flag.String("state", "memory", "keyed state backend: memory or badger (a temporary database per run; large-state always uses badger)")
	memprofile := flag.String("memprofile", "", "write a heap profile taken at the engine's heap peak to this file")
	verbose := flag.Bool("v", false, "log each run's timings (and the engine's CPU seconds) and stage counters on stderr")
	flag.BoolVar(&localAggregation, "local-aggregation", true, "keyed-count: fold records per key upstream of the exchange (graph.LocalAggregation); false sends every record across")
	flag.Parse()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(os.Stdout, *scenario, *events, *parallelism, *runs, *nodes, *backend, *checkpoint, *cpuprofile, *memprofile, logger); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, scenario string, n int64, p, runs, nodes int, backend string, checkpoint time.Duration, cpuprofile, memprofile string, logger *slog.Logger) error {
	if n < 1 {
		return fmt.Errorf("-events %d: want at least 1", n)
	}
	if p < 1 {
		return fmt.Errorf("-parallelism %d: want at least 1", p)
	}
	if runs < 1 {
		return fmt.Errorf("-runs %d: want at least 1", runs)
	}
	if scenario == "large-state" {
		backend = "badger"
	}
	if backend != "memory" && backend != "badger" {
		return fmt.Errorf("-state %q: want memory or badger", backend)
	}
	if nodes < 1 || (nodes > 1 && backend != "memory") {
		return fmt.Errorf("-nodes %d: want 1, or more with the memory state backend", nodes)
	}
	var newBench func() bench
	switch scenario {
	case "stateless":
		newBench = func() bench { return &stateless{} }
	case "keyed-count":
		newBench = func() bench { return &keyedCount{} }
	case "backpressure":
		newBench = func() bench { return &keyedCount{slow: true} }
	case "window":
		newBench = func() bench { return &windowed{} }
	case "large-state":
		newBench = func() bench { return &largeState{logger: logger} }
	default:
		return fmt.Errorf("unknown -scenario %q (want stateless, keyed-count, backpressure, window or large-state)", scenario)
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return fmt.Errorf("create cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var baseSecs, engineSecs, plainSecs []float64
	var peak uint64
	var checkpoints int64
	for i := range runs {
		s := newBench()
		s.prepare(n)
		runtime.GC()
		t0 := time.Now()
		s.baseline(n)
		baseSecs = append(baseSecs, time.Since(t0).Seconds())
		if f, ok := s.(interface{ failed() error }); ok && f.failed() != nil {
			return f.failed()
		}

		// With -checkpoint, the same engine runs without checkpoints too, right before or
		// after (alternately, so that neither gains from going second): what they cost.
		var plain float64
		timePlain := func() error {
			s := newBench()
			s.prepare(n)
			if e, ok := s.(interface{ expect(n int64) }); ok {
				e.expect(n) // the baseline's result without timing it again
			} else {
				s.baseline(n) // what the engine's result is checked against
			}
			secs, heap, _, err := runEngine(s, scenario, n, p, nodes, backend, 0, "", logger)
			plain, peak = secs, max(peak, heap)
			return err
		}
		if checkpoint > 0 && i%2 == 1 {
			if err := timePlain(); err != nil {
				return err
			}
		}
		cpu0 := cpuSeconds()
		secs, heap, cps, err := runEngine(s, scenario, n, p, nodes, backend, checkpoint, memprofile, logger)
		cpu := cpuSeconds() - cpu0
		if err != nil {
			return err
		}
		engineSecs, peak, checkpoints = append(engineSecs, secs), max(peak, heap), cps
		if checkpoint > 0 && i%2 == 0 {
			if err := timePlain(); err != nil {
				return err
			}
		}
		if checkpoint > 0 {
			plainSecs = append(plainSecs, plain)
			logger.Info("run done", "run", i+1, "baseline_seconds", baseSecs[i], "engine_seconds", secs, "engine_cpu_seconds", cpu, "checkpoints", cps, "without_checkpoints_seconds", plain)
		} else {
			logger.Info("run done", "run", i+1, "baseline_seconds", baseSecs[i], "engine_seconds", secs, "engine_cpu_seconds", cpu, "ratio", baseSecs[i]/secs, "peak_heap_bytes", heap)
		}
	}
	base, secs := median(baseSecs), median(engineSecs)
	r := result{Scenario: scenario, Backend: backend, Nodes: nodes, Events: n, Parallelism: p, Seconds: secs,
		EventsPerSec: float64(n) / secs, BaselineEventsPerSec: float64(n) / base, PeakHeapBytes: peak}
	r.Ratio = r.EventsPerSec / r.BaselineEventsPerSec
	if checkpoint > 0 {
		r.Checkpoints = checkpoints
		r.NoCheckpointEventsPerSec = float64(n) / median(plainSecs)
		// The cost is the median over runs of each run's pair (with, without), timed one
		// after the other: drift of a shared machine cancels better in pairs than across
		// two medians.
		costs := make([]float64, len(plainSecs))
		for i := range plainSecs {
			costs[i] = 1 - plainSecs[i]/engineSecs[i]
		}
		r.CheckpointCost = median(costs)
	}
	return json.NewEncoder(w).Encode(r)
}

// runEngine builds s's job with the backend and checkpoint interval (0: none), runs it
// once, checks its result and returns its seconds, peak heap and checkpoints completed.
func runEngine(s bench, scenario string, n int64, p, nodes int, backend string, checkpoint time.Duration, memprofile string, logger *slog.Logger) (float64, uint64, int64, error) {
	runtime.GC()
	opts := []graph.JobOption{graph.Parallelism(p), graph.Logger(logger)}
	if o, ok := s.(interface {
		options() ([]graph.JobOption, func(), error)
	}); ok {
		more, cleanup, err := o.options()
		if err != nil {
			return 0, 0, 0, err
		}
		defer cleanup()
		opts = append(opts, more...)
	} else if backend == "badger" {
		dir, err := os.MkdirTemp("", "eddy-bench-state-")
		if err != nil {
			return 0, 0, 0, fmt.Errorf("state directory: %w", err)
		}
		defer os.RemoveAll(dir)
		db, err := persistence.OpenBadger(dir, persistence.WithSync(persistence.SyncNever), persistence.WithLogger(logger))
		if err != nil {
			return 0, 0, 0, err
		}
		defer db.Close()
		opts = append(opts, graph.BadgerState(db))
	}
	if checkpoint > 0 {
		dir, err := os.MkdirTemp("", "eddy-bench-checkpoints-")
		if err != nil {
			return 0, 0, 0, fmt.Errorf("checkpoint directory: %w", err)
		}
		defer os.RemoveAll(dir)
		store, err := persistence.OpenDirCheckpoints(dir)
		if err != nil {
			return 0, 0, 0, err
		}
		opts = append(opts, graph.Checkpoints(store, checkpoint))
	}
	// One job per node: in-process nodes, each with its own actor system and Proto.Actor
	// remote on loopback, the key groups and splits placed over them as on a cluster.
	nodeOpts, stopNodes, err := clusterOptions(nodes, scenario, logger)
	if err != nil {
		return 0, 0, 0, err
	}
	defer stopNodes()
	var jobs []*graph.Job
	for _, no := range nodeOpts {
		g := graph.New(scenario)
		s.build(g, n)
		job, err := g.Build(append(opts, no...)...)
		if err != nil {
			return 0, 0, 0, err
		}
		jobs = append(jobs, job)
	}
	stop := watchHeap(memprofile)
	t0 := time.Now()
	errs := make(chan error, len(jobs))
	for _, job := range jobs {
		go func() { errs <- job.Run(context.Background()) }()
	}
	for range jobs {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	secs := time.Since(t0).Seconds()
	peak := stop()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("run %s: %w", scenario, err)
	}
	if err := s.check(); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: engine and baseline differ: %w", scenario, err)
	}
	var completed int64
	for i, job := range jobs {
		for _, st := range job.Stats() {
			logger.Info("stage", "node", i, "stage", st.Stage, "instances", st.Instances, "in", st.In, "out", st.Out,
				"dead_letters", st.DeadLetters, "batches", st.Batches, "backpressure", st.Backpressure,
				"alignment", st.Alignment, "max_queued_batches", st.MaxQueued)
		}
		cps := job.Checkpoints()
		completed += cps.Completed // only the coordinator's are not zero
		if cps.Completed > 0 {
			logger.Info("checkpoints", "completed", cps.Completed, "last_duration", cps.Duration, "last_bytes", cps.Bytes)
		}
	}
	return secs, peak, completed, nil
}

// cpuSeconds is the CPU time (user and system) the process has used so far: what a run
// costs whatever else the machine runs.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// watchHeap samples the live heap every millisecond until the returned function is called,
// which returns the peak.
func watchHeap(profile string) func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	var peak atomic.Uint64
	peak.Store(read())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		var profiled time.Time
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := read(); v > peak.Load() {
					peak.Store(v)
					// A heap profile at each new peak, at most every second.
					if profile != "" && time.Since(profiled) >= time.Second {
						profiled = time.Now()
						if f, err := os.Create(profile); err == nil {
							_ = pprof.Lookup("heap").WriteTo(f, 0)
							f.Close()
						}
					}
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

type bench interface {
	prepare(n int64)
	baseline(n int64)
	build(g *graph.Graph, n int64)
	check() error
}

func statelessValue(i int64) int64 { return i * 7 % 1000 }

type stateless struct {
	want int64
	got  atomic.Int64
}

func (s *stateless) prepare(int64) {}

func (s *stateless) baseline(n int64) {
	var sum int64
	for i := range n {
		v := statelessValue(i) * 2
		if v%3 == 0 {
			sum += v
		}
	}
	s.want = sum
}

func (s *stateless) build(g *graph.Graph, n int64) {
	src := graph.From(g, stream.Generate(n, statelessValue))
	doubled := graph.Map(src, func(v int64) int64 { return v * 2 })
	doubled.Filter(func(v int64) bool { return v%3 == 0 }).To(stream.FuncSink(func(recs []stream.Record[int64]) error {
		var sum int64
		for _, r := range recs {
			sum += r.Value
		}
		s.got.Add(sum)
		return nil
	}))
}

func (s *stateless) check() error {
	if got := s.got.Load(); got != s.want {
		return fmt.Errorf("sum %d, baseline %d", got, s.want)
	}
	return nil
}

const keys = 10000

// localAggregation is the -local-aggregation flag.
var localAggregation = true

func key(i int64) uint64 { return uint64(i) * 2654435761 % keys }

type keyedCount struct {
	slow    bool
	spin    time.Duration
	want    map[uint64]int64
	got     []int64 // final count per key, written by the sink
	updates atomic.Int64
}

func (k *keyedCount) prepare(n int64) {
	k.got = make([]int64, keys)
	if k.slow {
		// Time the source's own work per record, and make the sink 100× slower.
		t0 := time.Now()
		var sink uint64
		const probe = 1_000_000
		for i := range int64(probe) {
			sink += key(i)
		}
		per := time.Since(t0) / probe
		k.spin = max(100*per, 100*time.Nanosecond)
		_ = sink
	}
}

func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

func (k *keyedCount) baseline(n int64) {
	counts := make(map[uint64]int64, keys)
	for i := range n {
		kk := key(i)
		counts[kk]++
		if k.slow {
			spin(k.spin)
		}
	}
	k.want = counts
}

func (k *keyedCount) build(g *graph.Graph, n int64) {
	src := graph.From(g, stream.Generate(n, key))
	var opts []graph.Option
	if k.slow {
		opts = append(opts, graph.Emit(stream.EmitEveryUpdate))
	}
	opts = append(opts, graph.LocalAggregation(localAggregation))
	counts := graph.Count(graph.KeyBy(src, func(k uint64) uint64 { return k }), opts...)
	// Keys are partitioned: one key's updates come from one actor, in order; the sink
	// keeps each key's latest count.
	var mu sync.Mutex
	counts.To(sinkFunc(func(recs []stream.Record[stream.KV[uint64, int64]]) error {
		if k.slow {
			for range recs {
				spin(k.spin)
			}
		}
		mu.Lock()
		for _, r := range recs {
			k.got[r.Value.Key] = r.Value.Value
		}
		mu.Unlock()
		k.updates.Add(int64(len(recs)))
		return nil
	}))
}

// sinkFunc is a sink that calls f from many actors at once (stream.FuncSink serialises calls,
// which would make the slow sink slower still on more cores).
type sinkFunc func([]stream.Record[stream.KV[uint64, int64]]) error

func (f sinkFunc) WriteBatch(recs []stream.Record[stream.KV[uint64, int64]]) error { return f(recs) }
func (f sinkFunc) Close() error                                                    { return nil }

func (k *keyedCount) check() error {
	var errs []error
	for key, want := range k.want {
		if got := k.got[key]; got != want {
			errs = append(errs, fmt.Errorf("key %d: count %d, baseline %d", key, got, want))
			if len(errs) > 5 {
				break
			}
		}
	}
	var total int64
	for _, c := range k.got {
		total += c
	}
	var wantTotal int64
	for _, c := range k.want {
		wantTotal += c
	}
	if total != wantTotal {
		errs = append(errs, fmt.Errorf("total %d, baseline %d: records lost", total, wantTotal))
	}
	if k.slow && k.updates.Load() != wantTotal {
		errs = append(errs, fmt.Errorf("the sink got %d updates, want one per event (%d)", k.updates.Load(), wantTotal))
	}
	return errors.Join(errs...)
}

// The window scenario's events: 100 per millisecond of event time, in order.
type tick struct {
	Key   uint64
	TS    int64
	Value int64
}

func tickAt(i int64) tick { return tick{Key: key(i), TS: i / 100, Value: i % 7} }

const windowSize = 1000 // ms

type cs struct{ Count, Sum int64 }

type countSum struct{}

func (countSum) Zero() cs            { return cs{} }
func (countSum) Add(a cs, t tick) cs { return cs{a.Count + 1, a.Sum + t.Value} }
func (countSum) Result(a cs) cs      { return a }

// firingHash mixes one firing into a value whose sum over all firings does not depend on
// their order: engine and baseline fire the same windows in different orders.
func firingHash(k uint64, start int64, c cs) uint64 {
	h := k*0x9E3779B97F4A7C15 ^ uint64(start)*0xC2B2AE3D27D4EB4F ^ uint64(c.Count)*0x165667B19E3779F9 ^ uint64(c.Sum)*0x27D4EB2F165667C5
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	return h ^ h>>32
}

type windowed struct {
	wantSum, wantFirings uint64
	gotSum, gotFirings   atomic.Uint64
}

func (w *windowed) prepare(int64) {}

func (w *windowed) baseline(n int64) {
	open := make(map[uint64]cs, keys)
	var start int64
	var sum, firings uint64
	fire := func() {
		for k, c := range open {
			sum += firingHash(k, start, c)
			firings++
		}
		clear(open)
	}
	for i := range n {
		t := tickAt(i)
		if s := t.TS / windowSize * windowSize; s != start {
			fire() // the watermark (in-order time) has passed the window's end
			start = s
		}
		c := open[t.Key]
		open[t.Key] = cs{c.Count + 1, c.Sum + t.Value}
	}
	fire()
	w.wantSum, w.wantFirings = sum, firings
}

func (w *windowed) build(g *graph.Graph, n int64) {
	src := graph.From(g, strided{n})
	stamped := graph.Timestamps(src, func(t tick) int64 { return t.TS }, stream.Monotonous[tick]())
	perKey := graph.KeyBy(stamped, func(t tick) uint64 { return t.Key }, graph.WithCodec(stream.JSON[tick]()))
	results := graph.Window(perKey, stream.Tumbling(windowSize*time.Millisecond), countSum{})
	results.To(checksumSink[stream.WindowResult[uint64, cs]]{
		hash: func(r stream.WindowResult[uint64, cs]) uint64 { return firingHash(r.Key, r.Start, r.Value) },
		sum:  &w.gotSum, n: &w.gotFirings})
}

// checksumSink adds up an order-independent hash of every record and counts them: the
// engine's side of a scenario whose results are too many to keep.
type checksumSink[T any] struct {
	hash   func(T) uint64
	sum, n *atomic.Uint64
}

func (s checksumSink[T]) WriteBatch(recs []stream.Record[T]) error {
	var sum uint64
	for _, r := range recs {
		sum += s.hash(r.Value)
	}
	s.sum.Add(sum)
	s.n.Add(uint64(len(recs)))
	return nil
}

func (checksumSink[T]) Close() error { return nil }

func (w *windowed) check() error {
	if w.gotFirings.Load() != w.wantFirings || w.gotSum.Load() != w.wantSum {
		return fmt.Errorf("%d firings with checksum %x, baseline %d with %x", w.gotFirings.Load(), w.gotSum.Load(), w.wantFirings, w.wantSum)
	}
	return nil
}

// strided is the window scenario's source: split j of P generates events j, j+P, j+2P, ...,
// so that all splits move through event time together (contiguous ranges would hold the
// watermark back at the first split's pace).
type strided struct{ n int64 }

func (s strided) Splits(p int) ([]stream.Split[tick], error) {
	out := make([]stream.Split[tick], p)
	for j := range p {
		out[j] = &stridedSplit{next: int64(j), step: int64(p), end: s.n}
	}
	return out, nil
}

type stridedSplit struct{ next, step, end int64 }

func (s *stridedSplit) Read(ctx context.Context, max int, out stream.Output[tick]) (int, error) {
	recs, err := s.Append(ctx, nil, max)
	for _, r := range recs {
		out.Emit(r)
	}
	return len(recs), err
}

func (s *stridedSplit) Append(_ context.Context, dst []stream.Record[tick], max int) ([]stream.Record[tick], error) {
	for ; max > 0 && s.next < s.end; max-- {
		dst = append(dst, stream.Record[tick]{Value: tickAt(s.next)})
		s.next += s.step
	}
	if s.next >= s.end {
		return dst, io.EOF
	}
	return dst, nil
}

func (s *stridedSplit) Close() error { return nil }

// largeState keeps a 100-byte value per key for N keys on the Badger state backend.
type largeState struct {
	logger           *slog.Logger
	baseErr          error
	wantSum, wantLen uint64
	gotSum, gotLen   atomic.Uint64
}

type keyValue struct {
	Key   uint64
	Value string
}

func largeValue(i int64) keyValue {
	return keyValue{Key: uint64(i), Value: fmt.Sprintf("%0100d", i*2654435761)}
}

func valueHash(k uint64, v string) uint64 {
	h := k * 0x9E3779B97F4A7C15
	for i := 0; i < len(v); i++ {
		h = (h ^ uint64(v[i])) * 0x100000001B3
	}
	return h
}

func (l *largeState) prepare(int64) {}

// baselineBatch is how many keys the baseline reads and writes per transaction.
const baselineBatch = 1000

// baseline: a plain loop that keeps the latest value of every key in Badger, with the same
// options as the engine's state backend: per batch of baselineBatch keys, one read
// transaction that looks every key up, then one write batch with the new values. Every
// key comes once, so its latest value is the one generated.
func (l *largeState) baseline(n int64) {
	l.wantSum, l.wantLen, l.baseErr = 0, 0, nil
	if err := l.plainBadger(n); err != nil {
		l.baseErr = fmt.Errorf("baseline: %w", err)
	}
}

func (l *largeState) failed() error { return l.baseErr }

// expect computes what the baseline's result is without Badger.
func (l *largeState) expect(n int64) {
	l.wantSum, l.wantLen = 0, 0
	for i := range n {
		kv := largeValue(i)
		l.wantSum += valueHash(kv.Key, kv.Value)
		l.wantLen++
	}
}

func (l *largeState) plainBadger(n int64) error {
	dir, err := os.MkdirTemp("", "eddy-bench-baseline-")
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	defer os.RemoveAll(dir)
	prevLimit := debug.SetMemoryLimit(largeStateMemoryLimit)
	defer debug.SetMemoryLimit(prevLimit)
	db, err := badger.Open(largeStateOptions(badger.DefaultOptions(dir)).WithLogger(nil))
	if err != nil {
		return err
	}
	defer db.Close()
	keys := make([][]byte, 0, baselineBatch)
	values := make([][]byte, 0, baselineBatch)
	for start := int64(0); start < n; start += baselineBatch {
		keys, values = keys[:0], values[:0]
		for i := start; i < min(start+baselineBatch, n); i++ {
			kv := largeValue(i)
			keys = append(keys, binary.BigEndian.AppendUint64(nil, kv.Key))
			values = append(values, []byte(kv.Value))
		}
		// Read: the latest value so far of every key (a real job would fold into it).
		err := db.View(func(txn *badger.Txn) error {
			for _, k := range keys {
				item, err := txn.Get(k)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := item.Value(func([]byte) error { return nil }); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read batch at %d: %w", start, err)
		}
		wb := db.NewWriteBatch()
		for j, k := range keys {
			if err := wb.Set(k, values[j]); err != nil {
				wb.Cancel()
				return fmt.Errorf("write batch at %d: %w", start, err)
			}
			l.wantSum += valueHash(binary.BigEndian.Uint64(k), string(values[j]))
			l.wantLen++
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("write batch at %d: %w", start, err)
		}
	}
	return nil
}

// latest keeps the latest value of a key.
type latest struct{}

func (latest) Zero() string                     { return "" }
func (latest) Add(_ string, kv keyValue) string { return kv.Value }
func (latest) Result(acc string) string         { return acc }

func (l *largeState) build(g *graph.Graph, n int64) {
	src := graph.From(g, stream.Generate(n, largeValue))
	perKey := graph.KeyBy(src, func(kv keyValue) uint64 { return kv.Key }, graph.WithCodec(stream.JSON[keyValue]()))
	graph.Aggregate(perKey, latest{}).To(checksumSink[stream.KV[uint64, string]]{
		hash: func(kv stream.KV[uint64, string]) uint64 { return valueHash(kv.Key, kv.Value) },
		sum:  &l.gotSum, n: &l.gotLen})
}

// largeStateMemoryLimit is the soft memory limit while the engine or the baseline runs: it
// makes the collector run before garbage piles up (the state is on disk, and what the heap
// holds between collections is mostly Badger's compaction buffers and records already
// passed on).
const largeStateMemoryLimit = 224 << 20

// largeStateOptions are the Badger options of both the engine's state backend and the
// baseline's database: persistence.LargeStateOptions (why each: its doc comment).
func largeStateOptions(o badger.Options) badger.Options { return persistence.LargeStateOptions(o) }

func (l *largeState) options() ([]graph.JobOption, func(), error) {
	dir, err := os.MkdirTemp("", "eddy-bench-state-")
	if err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	db, err := persistence.OpenBadger(dir, persistence.WithSync(persistence.SyncNever), persistence.WithLogger(l.logger),
		persistence.WithBadgerOptions(largeStateOptions))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	prevLimit := debug.SetMemoryLimit(largeStateMemoryLimit)
	cleanup := func() {
		debug.SetMemoryLimit(prevLimit)
		_ = db.Close()
		_ = os.RemoveAll(dir)
	}
	// Fewer, larger key groups: each keeps a cache and writes back in batches of its own.
	return []graph.JobOption{graph.BadgerState(db), graph.MaxKeyGroups(16)}, cleanup, nil
}

func (l *largeState) check() error {
	if l.baseErr != nil {
		return l.baseErr
	}
	if l.gotSum.Load() != l.wantSum || l.gotLen.Load() != l.wantLen {
		return fmt.Errorf("%d values with checksum %x, baseline %d with %x", l.gotLen.Load(), l.gotSum.Load(), l.wantLen, l.wantSum)
	}
	return nil
}
