package infer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
)

// point is a record with an id and two features.
type point struct {
	ID int64
	X  []float32
}

func points(n int64) stream.Source[point] {
	return stream.Generate(n, func(i int64) point { return point{ID: i, X: []float32{float32(i), float32(i % 7)}} })
}

func features(p point) []float32 { return p.X }

// affine is the model of these tests: out = [x0 + 2*x1, x0 - x1], row by row.
func affine(row []float32) []float32 { return []float32{row[0] + 2*row[1], row[0] - row[1]} }

// recorder wraps a model and records the size of every call.
type recorder struct {
	m infer.Model
	// mu guards sizes.
	mu    sync.Mutex
	sizes []int
}

func (r *recorder) Infer(ctx context.Context, rows [][]float32) ([][]float32, error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(rows))
	r.mu.Unlock()
	return r.m.Infer(ctx, rows)
}

func (r *recorder) calls() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sizes)
}

// checkScored asserts that got holds every id in [0, n) exactly once, scored by affine, and,
// when ordered, in id order.
func checkScored(t *testing.T, got []infer.Scored[point], n int64, ordered bool) {
	t.Helper()
	if int64(len(got)) != n {
		t.Fatalf("%d records out, want %d", len(got), n)
	}
	seen := make([]bool, n)
	for i, s := range got {
		if ordered && s.In.ID != int64(i) {
			t.Fatalf("record %d out is id %d: not in input order", i, s.In.ID)
		}
		if seen[s.In.ID] {
			t.Fatalf("id %d scored twice", s.In.ID)
		}
		seen[s.In.ID] = true
		if want := affine(s.In.X); !slices.Equal(s.Output, want) {
			t.Fatalf("id %d: output %v, want %v", s.In.ID, s.Output, want)
		}
	}
}

func TestStageBatchesAndOrder(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		n                      int64
		maxBatch, concurrency  int
		parallelism, batchSize int
	}{
		{"batch 1", 300, 1, 1, 1, 64},
		{"batch 64", 5000, 64, 4, 1, 512},
		{"batch 64, 3 instances", 5000, 64, 4, 3, 256},
		{"batch larger than the exchange's", 1000, 1000, 2, 1, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := graph.New("score")
			model := &recorder{m: infer.RowFunc(affine)}
			scored := infer.Stage(graph.From(g, points(tc.n)), model, features, infer.MaxBatch(tc.maxBatch), infer.Concurrency(tc.concurrency))
			out := stream.NewCollectSink[infer.Scored[point]]()
			scored.To(out)
			run(t, g, graph.Parallelism(tc.parallelism), graph.BatchSize(tc.batchSize))
			got := out.Values()
			if tc.parallelism > 1 {
				slices.SortFunc(got, func(a, b infer.Scored[point]) int { return int(a.In.ID - b.In.ID) })
			}
			checkScored(t, got, tc.n, true)
			calls := model.calls()
			total := 0
			for _, s := range calls {
				total += s
				if s > tc.maxBatch || s > tc.batchSize {
					t.Errorf("a request of %d rows; max batch %d, exchange batch %d", s, tc.maxBatch, tc.batchSize)
				}
			}
			if int64(total) != tc.n {
				t.Errorf("the model scored %d rows, want %d", total, tc.n)
			}
			if minCalls := (int(tc.n) + tc.maxBatch - 1) / tc.maxBatch; len(calls) < minCalls || len(calls) > 3*minCalls+10 {
				t.Errorf("%d requests for %d records with max batch %d: batches do not fill", len(calls), tc.n, tc.maxBatch)
			}
		})
	}
}

// slowFirst is a model under which the request holding id 0 completes last: every other
// request of its batch overtakes it.
func slowFirst(ctx context.Context, rows [][]float32) ([][]float32, error) {
	for _, r := range rows {
		if r[0] == 0 {
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return infer.RowFunc(affine).Infer(ctx, rows)
}

func TestStageOrderedWhenRequestsCompleteOutOfOrder(t *testing.T) {
	for _, unordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("unordered=%v", unordered), func(t *testing.T) {
			g := graph.New("order")
			opts := []infer.Option{infer.MaxBatch(16), infer.Concurrency(8)}
			if unordered {
				opts = append(opts, infer.Unordered())
			}
			out := stream.NewCollectSink[infer.Scored[point]]()
			infer.Stage(graph.From(g, points(256)), infer.Func(slowFirst), features, opts...).To(out)
			run(t, g, graph.Parallelism(1), graph.BatchSize(256))
			got := out.Values()
			if !unordered {
				checkScored(t, got, 256, true)
				return
			}
			checkScored(t, got, 256, false)
			// Unordered: the request of id 0 finished last, so its records came out last.
			if i := slices.IndexFunc(got, func(s infer.Scored[point]) bool { return s.In.ID == 0 }); i < 256-16 {
				t.Errorf("id 0 came out at %d of 256 in unordered mode; its slow request should come last", i)
			}
		})
	}
}

// flaky fails each request the first fails times it sees its first row, with err.
type flaky struct {
	fails int
	err   error
	// mu guards seen.
	mu    sync.Mutex
	seen  map[float32]int
	calls atomic.Int64
}

func (f *flaky) Infer(ctx context.Context, rows [][]float32) ([][]float32, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.seen[rows[0][0]]++
	n := f.seen[rows[0][0]]
	f.mu.Unlock()
	if n <= f.fails {
		return nil, f.err
	}
	return infer.RowFunc(affine).Infer(ctx, rows)
}

func TestStageRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fails     int
		err       error
		retries   int
		wantOut   int64
		wantCalls int64
		reason    string
	}{
		{"two failures, three retries", 2, errors.New("unavailable"), 3, 400, 3 * 25, ""},
		{"four failures, three retries", 4, errors.New("unavailable"), 3, 0, 4 * 25, "after 3 retries: unavailable"},
		{"permanent", 1, infer.Permanent(errors.New("bad request")), 3, 0, 25, "bad request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := graph.New("retry")
			model := &flaky{fails: tc.fails, err: tc.err, seen: map[float32]int{}}
			out := stream.NewCollectSink[infer.Scored[point]]()
			infer.Stage(graph.From(g, points(400)), model, features, infer.MaxBatch(16), infer.Retries(tc.retries), infer.Backoff(time.Millisecond, 4*time.Millisecond), infer.Name("model")).To(out)
			var dl letters
			run(t, g, graph.Parallelism(1), graph.BatchSize(400), dl.option())
			if got := int64(len(out.Values())); got != tc.wantOut {
				t.Errorf("%d scored, want %d", got, tc.wantOut)
			}
			if tc.wantOut > 0 {
				checkScored(t, out.Values(), tc.wantOut, true)
			}
			if got := model.calls.Load(); got != tc.wantCalls {
				t.Errorf("%d requests, want %d", got, tc.wantCalls)
			}
			dead := dl.all()
			if int64(len(dead))+int64(len(out.Values())) != 400 {
				t.Errorf("%d dead letters + %d scored; want 400 in all", len(dead), len(out.Values()))
			}
			ids := map[int64]bool{}
			for _, d := range dead {
				p, ok := d.Value.(point)
				if !ok || d.Stage != "model" || !strings.Contains(d.Reason, tc.reason) {
					t.Fatalf("dead letter %+v; want a point from stage model, reason %q", d, tc.reason)
				}
				ids[p.ID] = true
			}
			if len(ids) != len(dead) {
				t.Errorf("%d dead letters for %d records: some twice", len(dead), len(ids))
			}
		})
	}
}

// sleepy takes delay per request, unless its context ends first.
func sleepy(delay time.Duration, calls *atomic.Int64) infer.Model {
	return infer.Func(func(ctx context.Context, rows [][]float32) ([][]float32, error) {
		n := calls.Add(1)
		if n == 1 { // only the first attempt is slow
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return infer.RowFunc(affine).Infer(ctx, rows)
	})
}

func TestStageTimeout(t *testing.T) {
	g := graph.New("timeout")
	var calls atomic.Int64
	out := stream.NewCollectSink[infer.Scored[point]]()
	infer.Stage(graph.From(g, points(10)), sleepy(10*time.Second, &calls), features, infer.Timeout(20*time.Millisecond), infer.Backoff(time.Millisecond, time.Millisecond)).To(out)
	start := time.Now()
	run(t, g, graph.Parallelism(1))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the timeout did not cut the slow request", d)
	}
	checkScored(t, out.Values(), 10, true)
	if calls.Load() != 2 {
		t.Errorf("%d requests, want 2 (a timeout, then its retry)", calls.Load())
	}
}

// widthModel takes rows of exactly two values.
type widthModel struct{ infer.Model }

func (widthModel) InputWidth() int { return 2 }

func TestStageBadFeatures(t *testing.T) {
	g := graph.New("bad-features")
	src := stream.Generate(100, func(i int64) point {
		switch i % 10 {
		case 3:
			return point{ID: i, X: []float32{1, 2, 3}}
		case 5:
			return point{ID: i} // nil features: the features function panics
		}
		return point{ID: i, X: []float32{float32(i), 1}}
	})
	out := stream.NewCollectSink[infer.Scored[point]]()
	feats := func(p point) []float32 {
		if p.X == nil {
			panic("no features")
		}
		return p.X
	}
	infer.Stage(graph.From(g, src), widthModel{infer.RowFunc(affine)}, feats).To(out)
	var dl letters
	run(t, g, graph.Parallelism(1), dl.option())
	if len(out.Values()) != 80 {
		t.Errorf("%d scored, want 80", len(out.Values()))
	}
	var reasons []string
	for _, d := range dl.all() {
		reasons = append(reasons, d.Reason)
	}
	if len(reasons) != 20 || slices.ContainsFunc(reasons, func(r string) bool {
		return !strings.Contains(r, "features have 3 values; model version \"\" takes 2") && !strings.Contains(r, "panic in the features function: no features")
	}) {
		t.Errorf("dead letters: %q", reasons)
	}
}

func TestStageRateLimit(t *testing.T) {
	g := graph.New("rate")
	model := &recorder{m: infer.RowFunc(affine)}
	out := stream.NewCollectSink[infer.Scored[point]]()
	infer.Stage(graph.From(g, points(100)), model, features, infer.MaxBatch(10), infer.RateLimit(100)).To(out)
	start := time.Now()
	run(t, g, graph.Parallelism(1))
	// 10 requests at 100/s: the last starts at least 90ms after the first.
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("10 requests at 100/s took %v", d)
	}
	checkScored(t, out.Values(), 100, true)
}

func TestStageBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    infer.Model
		f    func(point) []float32
		opts []infer.Option
		want string
	}{
		{"max batch", infer.RowFunc(affine), features, []infer.Option{infer.MaxBatch(-1)}, `infer stage "infer": bad max batch -1`},
		{"concurrency", infer.RowFunc(affine), features, []infer.Option{infer.Concurrency(-2), infer.Name("m")}, `infer stage "m": bad concurrency -2`},
		{"backoff", infer.RowFunc(affine), features, []infer.Option{infer.Backoff(time.Second, time.Millisecond)}, "bad backoff 1s..1ms"},
		{"no model", nil, features, nil, "model is nil"},
		{"no features", infer.RowFunc(affine), nil, nil, "features function is nil"},
		{"key of another type", infer.RowFunc(affine), features, []infer.Option{infer.Key(func(s string) string { return s })}, "Key takes a func(infer_test.point) string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := graph.New("bad")
			infer.Stage(graph.From(g, points(5)), tc.m, tc.f, tc.opts...).To(stream.NewCollectSink[infer.Scored[point]]())
			if _, err := g.Build(quiet); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v; want an error saying %q", err, tc.want)
			}
		})
	}
}
