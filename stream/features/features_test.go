package features_test

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/features"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// direct computes mean and sample variance the textbook way.
func direct(xs []float64) (mean, variance float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	if len(xs) > 1 {
		variance /= float64(len(xs) - 1)
	} else {
		variance = 0
	}
	return mean, variance
}

func TestMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		xs   []float64
	}{
		{"one", []float64{3}},
		{"two", []float64{1, 2}},
		{"large offset", []float64{1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16}},
		{"random", func() []float64 {
			xs := make([]float64, 1000)
			for i := range xs {
				xs[i] = rng.NormFloat64()*5 + 100
			}
			return xs
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m features.Moments
			for _, x := range tc.xs {
				m = m.Add(x)
			}
			mean, v := direct(tc.xs)
			if m.N != int64(len(tc.xs)) || !near(m.Mean, mean, 1e-12) || !near(m.Variance(), v, 1e-9) {
				t.Errorf("moments %+v (variance %v); want mean %v variance %v", m, m.Variance(), mean, v)
			}
			// Merge of two halves = all; removing the second half's values = the first half.
			h := len(tc.xs) / 2
			var a, b features.Moments
			for _, x := range tc.xs[:h] {
				a = a.Add(x)
			}
			for _, x := range tc.xs[h:] {
				b = b.Add(x)
			}
			if mm := a.Merge(b); mm.N != m.N || !near(mm.Mean, m.Mean, 1e-12) || !near(mm.Variance(), m.Variance(), 1e-9) {
				t.Errorf("merge %+v, want %+v", mm, m)
			}
			r := m
			for _, x := range tc.xs[h:] {
				r = r.Remove(x)
			}
			if r.N != a.N || !near(r.Mean, a.Mean, 1e-9) || !near(r.Variance(), a.Variance(), 1e-6) {
				t.Errorf("after removing: %+v, want %+v", r, a)
			}
		})
	}
}

func TestEMA(t *testing.T) {
	const h = time.Minute
	var e features.EMA
	if e.Value() != 0 {
		t.Error("an empty EMA is not 0")
	}
	e = e.Add(10, 0, h)
	if e.Value() != 10 {
		t.Errorf("one value: %v", e.Value())
	}
	// A value one half-life later weighs 1, the first 1/2: (10/2 + 40) / 1.5 = 30.
	e = e.Add(40, h.Milliseconds(), h)
	if !near(e.Value(), 30, 1e-12) {
		t.Errorf("after a half-life: %v, want 30", e.Value())
	}
	// The same two values in the other order give the same average.
	var o features.EMA
	o = o.Add(40, h.Milliseconds(), h).Add(10, 0, h)
	if !near(o.Value(), 30, 1e-12) {
		t.Errorf("out of order: %v, want 30", o.Value())
	}
	// Values at one instant weigh the same.
	var s features.EMA
	s = s.Add(1, 5, h).Add(3, 5, h)
	if s.Value() != 2 {
		t.Errorf("same instant: %v, want 2", s.Value())
	}
	// A long gap forgets: after 20 half-lives the old value is a millionth.
	f := features.EMA{}.Add(1000, 0, h).Add(0, 20*h.Milliseconds(), h)
	if f.Value() > 1e-3 {
		t.Errorf("after 20 half-lives: %v", f.Value())
	}
}

func TestRollingAndGap(t *testing.T) {
	var r features.Rolling
	xs := []float64{5, 1, 9, 3, 7, 2, 8}
	for i, x := range xs {
		r = r.Add(x, 3)
		lo := max(0, i-2)
		mean, v := direct(xs[lo : i+1])
		if !near(r.Moments.Mean, mean, 1e-12) || !near(r.Moments.Variance(), v, 1e-9) {
			t.Fatalf("after %d values: %+v; want the last 3: mean %v variance %v", i+1, r.Moments, mean, v)
		}
	}
	var g features.Gap
	for _, tc := range []struct {
		at   int64
		want time.Duration
	}{{1000, 0}, {4000, 3 * time.Second}, {3500, 500 * time.Millisecond}, {9000, 5 * time.Second}} {
		g = g.Add(tc.at)
		if g.Since() != tc.want {
			t.Errorf("after an event at %d: %v, want %v", tc.at, g.Since(), tc.want)
		}
	}
}

type txn struct {
	Card   string
	Amount float64
	At     int64
}

// The aggregators run per key in the graph's Aggregate and Window stages.
func TestAggregatorsInAGraph(t *testing.T) {
	var txns []txn
	for i := range 600 {
		card := []string{"a", "b", "c"}[i%3]
		txns = append(txns, txn{Card: card, Amount: float64(i % 50), At: int64(i) * 1000})
	}
	g := graph.New("features")
	src := graph.Timestamps(graph.From(g, stream.Slice(txns)), func(t txn) int64 { return t.At }, stream.BoundedOutOfOrder[txn](0))
	perCard := graph.KeyBy(src, func(t txn) string { return t.Card }, graph.WithCodec(stream.JSON[txn]()))
	stats := graph.Window(perCard, stream.Tumbling(time.Minute), features.MeanVarOf(func(t txn) float64 { return t.Amount }))
	gaps := graph.Aggregate(perCard, features.SinceLastOf(func(t txn) int64 { return t.At }), graph.Emit(stream.EmitEveryUpdate))
	statsOut := stream.NewCollectSink[stream.WindowResult[string, features.Moments]]()
	stats.To(statsOut)
	gapsOut := stream.NewCollectSink[stream.KV[string, time.Duration]]()
	gaps.To(gapsOut)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx, graph.Parallelism(2), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
	// 600 s of events: 10 windows per card.
	if n := len(statsOut.Values()); n != 30 {
		t.Fatalf("%d window results, want 30", n)
	}
	for _, w := range statsOut.Values() {
		var xs []float64
		for _, tx := range txns {
			if tx.Card == w.Key && tx.At >= w.Start && tx.At < w.End {
				xs = append(xs, tx.Amount)
			}
		}
		mean, v := direct(xs)
		if w.Value.N != int64(len(xs)) || !near(w.Value.Mean, mean, 1e-12) || !near(w.Value.Variance(), v, 1e-9) {
			t.Errorf("card %s window %d: %+v; want n %d mean %v variance %v", w.Key, w.Start, w.Value, len(xs), mean, v)
		}
	}
	for _, kv := range gapsOut.Values() {
		if kv.Value != 0 && kv.Value != 3*time.Second {
			t.Fatalf("card %s: time since last %v; events of a card are 3 s apart", kv.Key, kv.Value)
		}
	}
	row := features.Vector(func(t txn) float64 { return t.Amount }, func(t txn) float64 { return float64(t.At) / 1000 })(txns[7])
	if len(row) != 2 || row[0] != 7 || row[1] != 7 {
		t.Errorf("vector %v", row)
	}
}
