package graph_test

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// These tests hold every operator that can emit more than it takes in to the memory bound of
// credit-based flow control: with a batch size of 64 and one credit, however much one input
// record, one watermark or the end of input sets off, no batch is larger than 64 records and
// the heap does not grow with the fan-out. Each operator's output goes through a heap
// sampler (a Map fused into the emitting instance, so it runs while the instance emits) into
// a Rebalance, whose receiver hands each batch to a probe sink as the exchange delivered it.

const (
	boundedBatch = 64
	// fanOut is how many records one input record (or one timer) makes.
	fanOut = 200_000
	// firingKeys is how many keys fire at one watermark, or at the end of input.
	firingKeys = 1_000_000
	// heapGrowthBound is how far the heap may grow over what it held before the emission
	// started (after a collection, with GOGC at 10 while the test runs). Bounded, the
	// emission holds at most a batch per stage and per channel (kilobytes, plus garbage not
	// yet collected); unbounded, it holds the whole output at once: tens of megabytes for
	// these fan-outs (see docs/bench-bounded.md for the figures before and after).
	heapGrowthBound = 8 << 20
)

// boundedHarness returns a harness with batches of 64 records, one credit per channel and
// one key group, so that one instance emits everything.
func boundedHarness[T any](t *testing.T) *actortest.StageHarness[T] {
	return actortest.NewStageHarness[T](t, graph.BatchSize(boundedBatch), graph.Credits(1), graph.MaxKeyGroups(1))
}

// batchProbe samples the heap while an instance emits (sampled) and remembers the largest
// batch its receiver was handed (the sink).
type batchProbe[T any] struct {
	// mu guards the fields below: a sink may be called from several actors at once.
	mu      sync.Mutex
	records int
	largest int
	seen    int
	peak    uint64
	sample  []metrics.Sample
}

func newBatchProbe[T any]() *batchProbe[T] {
	return &batchProbe[T]{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

// sampled passes s on through a Map that samples the heap every 16th record.
func (p *batchProbe[T]) sampled(s graph.Stream[T]) graph.Stream[T] {
	return graph.Map(s, func(v T) T {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.seen++; p.seen%16 == 0 {
			metrics.Read(p.sample)
			p.peak = max(p.peak, p.sample[0].Value.Uint64())
		}
		return v
	})
}

// WriteBatch makes the probe the receiver's sink.
func (p *batchProbe[T]) WriteBatch(recs []stream.Record[T]) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records += len(recs)
	p.largest = max(p.largest, len(recs))
	return nil
}

func (p *batchProbe[T]) Close() error { return nil }

// probed sends what s carries through p's heap sampler and a Rebalance into p.
func probed[T any](s graph.Stream[T]) *batchProbe[T] {
	p := newBatchProbe[T]()
	graph.Rebalance(p.sampled(s)).To(p)
	return p
}

// heapInUse collects garbage and returns the bytes of live heap objects.
func heapInUse() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// measureEmission runs emit (what sets the emission off) and checks what probe saw: want
// records in all, no batch over the batch size, and a heap that grew by less than
// heapGrowthBound over what it held before.
func measureEmission[T any](t *testing.T, probe *batchProbe[T], want int, emit func()) {
	t.Helper()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	probe.mu.Lock()
	before := probe.records
	probe.peak = 0
	probe.mu.Unlock()
	base := heapInUse()
	emit()
	probe.mu.Lock()
	defer probe.mu.Unlock()
	if got := probe.records - before; got != want {
		t.Errorf("the receiver got %d records; want %d", got, want)
	}
	if probe.largest > boundedBatch {
		t.Errorf("largest batch received: %d records; want at most the batch size, %d", probe.largest, boundedBatch)
	}
	growth := int64(probe.peak) - int64(base)
	t.Logf("largest batch %d, heap %d MiB before, peak growth %.1f MiB", probe.largest, base>>20, float64(growth)/(1<<20))
	if growth > heapGrowthBound {
		t.Errorf("the heap grew by %.1f MiB while emitting; want under %d MiB", float64(growth)/(1<<20), heapGrowthBound>>20)
	}
}

func TestBoundedFlatMap(t *testing.T) {
	h := boundedHarness[int64](t)
	fanned := graph.FlatMap(h.Input(), func(n int64, emit func(int64)) {
		for i := range int64(fanOut) {
			emit(n*fanOut + i)
		}
	})
	probe := probed(fanned)
	h.Start()
	const inputs = 8
	recs := make([]stream.Record[int64], inputs)
	for i := range recs {
		recs[i] = stream.Record[int64]{Value: int64(i)}
	}
	measureEmission(t, probe, inputs*fanOut, func() {
		h.PushRecord(recs...)
		h.Flush()
	})
	if err := h.Err(); err != nil {
		t.Fatal(err)
	}
}

// pushKeys pushes keys 0..n-1 at event time ts.
func pushKeys(h *actortest.StageHarness[int64], n int, ts int64) {
	recs := make([]stream.Record[int64], n)
	for i := range recs {
		recs[i] = stream.Record[int64]{Value: int64(i), Time: ts}
	}
	h.PushRecord(recs...)
}

func identity(v int64) int64 { return v }

func TestBoundedJoinMatches(t *testing.T) {
	h := boundedHarness[int64](t)
	right := actortest.AddInput[int64](h, "right")
	zero := func(int64) int64 { return 0 }
	pairs := graph.IntervalJoin(graph.KeyBy(h.Input(), zero), graph.KeyBy(right.Stream(), zero), -time.Second, time.Second,
		func(a, b int64) int64 { return a*fanOut + b })
	probe := probed(pairs)
	recs := make([]stream.Record[int64], fanOut)
	for i := range recs {
		recs[i] = stream.Record[int64]{Value: int64(i)}
	}
	right.PushRecord(recs...)
	h.Flush()
	const inputs = 4
	left := make([]stream.Record[int64], inputs)
	for i := range left {
		left[i] = stream.Record[int64]{Value: int64(i)}
	}
	measureEmission(t, probe, inputs*fanOut, func() {
		h.PushRecord(left...) // each matches every record of the right side
		h.Flush()
	})
	if err := h.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBoundedProcessTimers(t *testing.T) {
	h := boundedHarness[int64](t)
	fired := graph.Process(graph.KeyBy(h.Input(), identity), stream.KeyedProcess[int64, int64, int64]{
		OnRecord: func(ctx stream.Context[int64], _ int64, _ stream.Emitter[int64]) error {
			ctx.RegisterTimer(ctx.Now().Add(time.Second))
			return nil
		},
		OnTimer: func(ctx stream.Context[int64], _ time.Time, out stream.Emitter[int64]) error {
			for i := range int64(fanOut) {
				out.Emit(ctx.Key()*fanOut + i)
			}
			return nil
		},
	})
	probe := probed(fired)
	const keys = 4
	pushKeys(h, keys, 0)
	h.Flush()
	measureEmission(t, probe, keys*fanOut, func() {
		h.Advance(time.Second)
		h.Flush()
	})
	if err := h.Err(); err != nil {
		t.Fatal(err)
	}
}

// The same fan-out on Proto.Actor: two source splits, each FlatMap emitting 200,000 records
// per input into a Rebalance over two receivers with one credit each.
func TestBoundedFlatMapOnProtoActor(t *testing.T) {
	const inputs = 8
	g := graph.New("fan")
	src := graph.From(g, stream.Generate(inputs, func(i int64) int64 { return i }))
	probe := probed(graph.FlatMap(src, func(n int64, emit func(int64)) {
		for i := range int64(fanOut) {
			emit(n*fanOut + i)
		}
	}))
	job := build(t, g, graph.BatchSize(boundedBatch), graph.Credits(1), graph.Parallelism(2))
	measureEmission(t, probe, inputs*fanOut, func() {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		if err := job.Run(ctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// Cancelling a job on Proto.Actor while a FlatMap call waits for credit unwinds the call (its
// deferred code runs) and leaves no coroutine behind (TestMain checks for leaks).
func TestBoundedCancelUnwindsOnProtoActor(t *testing.T) {
	var unwound, returned atomic.Int64
	g := graph.New("cancel")
	src := graph.From(g, stream.Generate(1, func(i int64) int64 { return i }))
	fanned := graph.FlatMap(src, func(n int64, emit func(int64)) {
		done := false
		defer func() {
			if done {
				returned.Add(1)
			} else {
				unwound.Add(1)
			}
		}()
		for i := range int64(100 * fanOut) {
			emit(i)
		}
		done = true
	})
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	graph.Rebalance(fanned).To(stream.FuncSink(func([]stream.Record[int64]) error {
		cancel() // the first batch ends the job, with most of the FlatMap's output to come
		return nil
	}))
	job := build(t, g, graph.BatchSize(boundedBatch), graph.Credits(1), graph.Parallelism(1))
	if err := job.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v; want it cancelled", err)
	}
	if unwound.Load() != 1 || returned.Load() != 0 {
		t.Errorf("the FlatMap's calls: %d unwound, %d returned; want the one in progress unwound", unwound.Load(), returned.Load())
	}
}
