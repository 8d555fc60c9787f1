package infer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
)

// tagged is a model whose output is [tag, x0]: it says who scored the row.
func tagged(tag float32) infer.Model {
	return infer.RowFunc(func(row []float32) []float32 { return []float32{tag, row[0]} })
}

type event struct {
	User string
	X    float32
}

func TestVersionsStickyWeights(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights map[string]int
	}{
		{"a/b", map[string]int{"a": 50, "b": 50}},
		{"canary 5%", map[string]int{"stable": 95, "canary": 5}},
		{"three", map[string]int{"x": 1, "y": 2, "z": 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := infer.NewVersions()
			tags := map[float32]string{}
			total := 0
			i := float32(1)
			for name, w := range tc.weights {
				if err := vs.Set(name, tagged(i), w); err != nil {
					t.Fatal(err)
				}
				tags[i] = name
				total += w
				i++
			}
			const users, perUser = 4000, 5
			g := graph.New("ab")
			src := stream.Generate(users*perUser, func(i int64) event { return event{User: fmt.Sprint("user-", i%users), X: float32(i)} })
			out := stream.NewCollectSink[infer.Scored[event]]()
			infer.Stage(graph.From(g, src), vs, func(e event) []float32 { return []float32{e.X} }, infer.Key(func(e event) string { return e.User })).To(out)
			run(t, g, graph.Parallelism(2))

			byUser := map[string]string{}
			count := map[string]int{}
			for _, s := range out.Values() {
				name := tags[s.Output[0]]
				if name != s.Version {
					t.Fatalf("record of %s: scored by %q, labelled %q", s.In.User, name, s.Version)
				}
				if prev, ok := byUser[s.In.User]; ok && prev != name {
					t.Fatalf("user %s met versions %q and %q: routing is not sticky", s.In.User, prev, name)
				}
				byUser[s.In.User] = name
				count[name]++
			}
			if len(out.Values()) != users*perUser {
				t.Fatalf("%d scored, want %d", len(out.Values()), users*perUser)
			}
			stats := vs.Stats()
			for name, w := range tc.weights {
				share := float64(count[name]) / float64(users*perUser)
				want := float64(w) / float64(total)
				// 4000 users: the share of a version is within a few standard deviations.
				if sd := math.Sqrt(want * (1 - want) / users); math.Abs(share-want) > 5*sd+0.005 {
					t.Errorf("version %s: %.3f of the records, want %.3f", name, share, want)
				}
				if stats[name].Records != int64(count[name]) {
					t.Errorf("version %s: stats say %d records, output %d", name, stats[name].Records, count[name])
				}
			}
		})
	}
}

func TestVersionsShadow(t *testing.T) {
	vs := infer.NewVersions()
	if err := vs.Set("live", infer.RowFunc(affine), 1); err != nil {
		t.Fatal(err)
	}
	// The shadow disagrees on rows whose x0 is a multiple of 10, and fails on x0 = 55.
	var shadowCalls atomic.Int64
	shadow := infer.Func(func(ctx context.Context, rows [][]float32) ([][]float32, error) {
		shadowCalls.Add(1)
		out := make([][]float32, len(rows))
		for i, r := range rows {
			if r[0] == 55 {
				return nil, errors.New("shadow broke")
			}
			out[i] = affine(r)
			if int(r[0])%10 == 0 {
				out[i][1] += 0.5
			}
		}
		return out, nil
	})
	if err := vs.Shadow("candidate", shadow); err != nil {
		t.Fatal(err)
	}
	g := graph.New("shadow")
	out := stream.NewCollectSink[infer.Scored[point]]()
	infer.Stage(graph.From(g, points(1000)), vs, features, infer.MaxBatch(10), infer.Retries(0)).To(out)
	var dl letters
	run(t, g, graph.Parallelism(1), dl.option())
	checkScored(t, out.Values(), 1000, true) // the live version's outputs, every record
	if len(dl.all()) != 0 {
		t.Errorf("a failing shadow cost records: %v", dl.all())
	}
	st := vs.Stats()["candidate"]
	// 100 requests of 10 rows; the one holding 55 failed. The others hold 99 rows
	// multiple of 10 out of 990 compared (the failed request held 50).
	if st.ShadowRecords != 990 || st.Disagreements != 99 || st.Failures != 1 || st.MaxDiff != 0.5 {
		t.Errorf("shadow stats %+v; want 990 compared, 99 disagreements, 1 failure, max diff 0.5", st)
	}
	for _, s := range out.Values() {
		if s.Version != "live" {
			t.Fatalf("a record labelled %q: the shadow's output was emitted", s.Version)
		}
	}
}

func TestVersionsErrors(t *testing.T) {
	vs := infer.NewVersions()
	if err := vs.Set("a", nil, 1); err == nil {
		t.Error("a nil model was set")
	}
	if err := vs.Set("a", tagged(1), 0); err == nil {
		t.Error("weight 0 was accepted")
	}
	if _, err := vs.Infer(context.Background(), [][]float32{{1}}); err == nil {
		t.Error("Infer with no live version succeeded")
	}
	_ = vs.Set("a", tagged(1), 1)
	if err := vs.Remove("a"); err == nil {
		t.Error("the last live version was removed")
	}
	_ = vs.Set("b", tagged(2), 1)
	if err := vs.Remove("a"); err != nil {
		t.Error(err)
	}
	if err := vs.Remove("a"); err == nil {
		t.Error("a version removed twice")
	}
	got, err := vs.Infer(context.Background(), [][]float32{{7}, {8}})
	if err != nil || got[0][0] != 2 || got[1][0] != 2 {
		t.Errorf("after removing a: %v, %v; want version b", got, err)
	}
}

// generation is a model loaded from a "file" of weights, all equal to gen when it is
// whole. It checks, per call, that it is whole and not closed.
type generation struct {
	gen     float32
	weights []float32
	scored  atomic.Int64
	closed  atomic.Bool
	// onScore is called with the rows scored by this call.
	onScore func(int)
	bad     *atomic.Int64
}

func load(gen int, onScore func(int), bad *atomic.Int64) *generation {
	g := &generation{gen: float32(gen), onScore: onScore, bad: bad}
	for range 1024 { // loaded a weight at a time, as a reader fills a tensor
		g.weights = append(g.weights, float32(gen))
	}
	return g
}

func (g *generation) Infer(_ context.Context, rows [][]float32) ([][]float32, error) {
	if g.closed.Load() {
		g.bad.Add(1)
		return nil, infer.Permanent(errors.New("scored by a closed model"))
	}
	for _, w := range g.weights {
		if w != g.gen || len(g.weights) != 1024 {
			g.bad.Add(1)
			return nil, infer.Permanent(errors.New("scored by a half-loaded model"))
		}
	}
	out := make([][]float32, len(rows))
	for i, r := range rows {
		out[i] = []float32{g.gen, r[0]}
	}
	g.scored.Add(int64(len(rows)))
	g.onScore(len(rows))
	return out, nil
}

func (g *generation) Close() error {
	g.closed.Store(true)
	return nil
}

func TestVersionsHotSwapUnderLoad(t *testing.T) {
	n, swaps := int64(1_000_000), 10
	if testing.Short() {
		n = 100_000
	}
	var total, bad atomic.Int64
	// Swap k happens once k/(swaps+1) of the records have been scored.
	due := make(chan struct{}, swaps)
	var next atomic.Int64
	next.Store(1)
	onScore := func(rows int) {
		done := total.Add(int64(rows))
		for {
			k := next.Load()
			if k > int64(swaps) || done < k*n/int64(swaps+1) || !next.CompareAndSwap(k, k+1) {
				return
			}
			due <- struct{}{}
		}
	}
	vs := infer.NewVersions()
	gens := []*generation{load(0, onScore, &bad)}
	if err := vs.Set("model", gens[0], 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 1; k <= swaps; k++ {
			select {
			case <-due:
			case <-ctx.Done():
				return
			}
			m := load(k, onScore, &bad)
			gens = append(gens, m)
			if err := vs.Set("model", m, 1); err != nil {
				t.Error(err)
			}
		}
	})

	g := graph.New("hot-swap")
	src := stream.Generate(n, func(i int64) int64 { return i })
	scored := infer.Stage(graph.From(g, src), vs, func(i int64) []float32 { return []float32{float32(i)} }, infer.MaxBatch(256), infer.Concurrency(4))
	seen := make([]bool, n)
	perGen := make([]int64, swaps+1)
	var mu sync.Mutex
	dupes := 0
	scored.To(stream.FuncSink(func(recs []stream.Record[infer.Scored[int64]]) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			id := r.Value.In
			if seen[id] {
				dupes++
			}
			seen[id] = true
			perGen[int(r.Value.Output[0])]++
		}
		return nil
	}))
	var dl letters
	run(t, g, graph.Parallelism(2), graph.BatchSize(1024), dl.option())
	cancel()
	wg.Wait()

	if d := dl.all(); len(d) > 0 {
		t.Fatalf("%d dead letters, first %+v", len(d), d[0])
	}
	if dupes > 0 || bad.Load() > 0 {
		t.Fatalf("%d records scored twice, %d calls on a half-loaded or closed model", dupes, bad.Load())
	}
	for id, ok := range seen {
		if !ok {
			t.Fatalf("record %d was never scored", id)
		}
	}
	if len(gens) != swaps+1 {
		t.Fatalf("%d swaps happened, want %d", len(gens)-1, swaps)
	}
	var sum int64
	for k, m := range gens {
		if m.scored.Load() != perGen[k] {
			t.Errorf("generation %d scored %d rows, the output says %d", k, m.scored.Load(), perGen[k])
		}
		if perGen[k] == 0 {
			t.Errorf("generation %d scored nothing: the swaps were not mid-run", k)
		}
		sum += perGen[k]

	}
	// Close waits for the replaced generations to be closed, and closes the live one.
	if err := vs.Close(); err != nil {
		t.Fatal(err)
	}
	for k, m := range gens {
		if !m.closed.Load() {
			t.Errorf("generation %d not closed after Versions.Close", k)
		}
	}
	if st := vs.Stats()["model"]; sum != n || st.Records != n {
		t.Errorf("per-generation counts add up to %d, version stats %d; want %d", sum, st.Records, n)
	}
	t.Logf("per generation: %v", perGen)
}

// The latency quantiles of a version: requests of about 1 ms, and one of about 50 ms.
func TestVersionLatencyQuantiles(t *testing.T) {
	vs := infer.NewVersions()
	var calls atomic.Int64
	model := infer.Func(func(ctx context.Context, rows [][]float32) ([][]float32, error) {
		d := time.Millisecond
		if calls.Add(1) == 50 {
			d = 50 * time.Millisecond
		}
		time.Sleep(d)
		return infer.RowFunc(affine).Infer(ctx, rows)
	})
	if err := vs.Set("m", model, 1); err != nil {
		t.Fatal(err)
	}
	g := graph.New("latency")
	infer.Stage(graph.From(g, points(100)), vs, features, infer.MaxBatch(1), infer.Concurrency(1)).To(stream.NewCollectSink[infer.Scored[point]]())
	run(t, g, graph.Parallelism(1))
	st := vs.Stats()["m"]
	// Buckets are powers of two in µs: 1 ms falls in [1024, 2048) µs, reported as 2.048 ms
	// (a sleep may run long on a loaded machine: at most a bucket or two more).
	if st.Batches != 100 || st.P50 < time.Millisecond || st.P50 > 8*time.Millisecond || st.P99 < st.P50 || st.MaxLatency < 50*time.Millisecond {
		t.Errorf("stats %+v; want p50 about 1 ms, max at least 50 ms", st)
	}
}
