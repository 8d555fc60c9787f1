package drift_test

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer/drift"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func normal(rng *rand.Rand, n int, mean float64) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = rng.NormFloat64() + mean
	}
	return xs
}

func TestStatistics(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ref, err := drift.NewReference(normal(rng, 5000, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		xs           []float64
		psiLo, psiHi float64
		ksLo, ksHi   float64
	}{
		{"same distribution", normal(rng, 2000, 0), 0, 0.05, 0, 0.05},
		{"shifted by half a sd", normal(rng, 2000, 0.5), 0.15, 0.4, 0.15, 0.25},
		{"shifted by 2 sd", normal(rng, 2000, 2), 2, 20, 0.6, 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			psi, ks := ref.PSI(tc.xs), ref.KS(tc.xs)
			if psi < tc.psiLo || psi > tc.psiHi || ks < tc.ksLo || ks > tc.ksHi {
				t.Errorf("PSI %.3f (want %.2f..%.2f), KS %.3f (want %.2f..%.2f)", psi, tc.psiLo, tc.psiHi, ks, tc.ksLo, tc.ksHi)
			}
		})
	}
	// KS by hand: {1,2,3} against {2,3,4}: the distribution functions differ by 1/3 at most.
	if d := drift.KS([]float64{1, 2, 3}, []float64{2, 3, 4}); math.Abs(d-1.0/3) > 1e-12 {
		t.Errorf("KS = %v, want 1/3", d)
	}
	if d := drift.KS([]float64{1, 2}, []float64{5, 6}); d != 1 {
		t.Errorf("KS of disjoint samples = %v, want 1", d)
	}
	if _, err := drift.NewReference(nil, 10); err == nil {
		t.Error("an empty reference was accepted")
	}
	if _, err := drift.NewReference([]float64{1, math.NaN()}, 10); err == nil {
		t.Error("a reference with NaN was accepted")
	}
}

// A stream whose mean shifts by one standard deviation at a known time raises a drift event
// within one window of the shift, and none before it.
func TestWatchRaisesDriftWithinAWindowOfTheShift(t *testing.T) {
	type reading struct {
		At    int64
		Value float64
	}
	const (
		perSecond = 2
		minutes   = 60
		window    = 5 * time.Minute
	)
	shift := (32*time.Minute + 30*time.Second).Milliseconds() // mid-window
	rng := rand.New(rand.NewPCG(42, 1))
	var readings []reading
	for i := range minutes * 60 * perSecond {
		at := int64(i) * 1000 / perSecond
		mean := 0.0
		if at >= shift {
			mean = 1
		}
		readings = append(readings, reading{At: at, Value: rng.NormFloat64() + mean})
	}
	ref, err := drift.NewReference(normal(rand.New(rand.NewPCG(3, 4)), 5000, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	g := graph.New("drift")
	src := graph.Timestamps(graph.From(g, stream.Slice(readings)), func(r reading) int64 { return r.At }, stream.BoundedOutOfOrder[reading](0))
	events := drift.Watch(src, func(r reading) float64 { return r.Value }, stream.Tumbling(window), drift.Detector{Reference: ref, PSI: 0.25, Alpha: 0.001})
	out := stream.NewCollectSink[drift.Event]()
	events.To(out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx, graph.Parallelism(2), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
	got := out.Values()
	if len(got) == 0 {
		t.Fatal("no drift event")
	}
	first := got[0]
	for _, e := range got {
		if e.Start < first.Start {
			first = e
		}
		if e.End <= shift {
			t.Errorf("a drift event for window [%d, %d), before the shift at %d: %+v", e.Start, e.End, shift, e)
		}
	}
	if first.Start > shift+window.Milliseconds() {
		t.Errorf("the first drift event is for the window from %v; the shift was at %v", time.Duration(first.Start)*time.Millisecond, time.Duration(shift)*time.Millisecond)
	}
	// After the shift, every whole window drifts.
	if want := int((int64(minutes)*60_000 - (shift/window.Milliseconds()+1)*window.Milliseconds()) / window.Milliseconds()); len(got) < want {
		t.Errorf("%d drift events; want at least the %d whole windows after the shift", len(got), want)
	}
	t.Logf("first drift event: %+v; %d in all", first, len(got))
}
