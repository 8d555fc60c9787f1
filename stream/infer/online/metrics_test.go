package online_test

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer/online"
)

type prediction struct {
	At      int64
	Version string
	Score   float64
	Label   bool
}

// Version "good" ranks every positive above every negative; "coin" scores at random
// (a fixed pattern); the window of the second minute has no positive for "good".
func TestMetricsPerVersionAndWindow(t *testing.T) {
	var preds []prediction
	for i := range 120 {
		at := int64(i) * 1000
		label := i%4 == 0
		good := 0.1
		if label {
			good = 0.9
		}
		if at >= 60_000 {
			label, good = false, 0.2
		}
		preds = append(preds,
			prediction{At: at, Version: "good", Score: good, Label: label},
			prediction{At: at, Version: "coin", Score: float64(i%3) / 2, Label: i%4 == 0})
	}
	g := graph.New("metrics")
	src := graph.Timestamps(graph.From(g, stream.Slice(preds)), func(p prediction) int64 { return p.At }, stream.BoundedOutOfOrder[prediction](0))
	out := stream.NewCollectSink[online.Metric]()
	online.Metrics(src, func(p prediction) online.Labelled {
		return online.Labelled{Version: p.Version, Score: p.Score, Label: p.Label}
	}, stream.Tumbling(time.Minute), 0.5).To(out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx, graph.Parallelism(2), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
	got := map[string]online.Metric{}
	for _, m := range out.Values() {
		got[m.Version+"/"+time.Duration(m.Start*int64(time.Millisecond)).String()] = m
	}
	if len(got) != 4 {
		t.Fatalf("%d metrics, want 2 versions x 2 windows: %+v", len(got), out.Values())
	}
	g0, g1, c0 := got["good/0s"], got["good/1m0s"], got["coin/0s"]
	if g0.N != 60 || g0.AUC != 1 || g0.Precision != 1 || g0.Recall != 1 || g0.Confusion != (online.Confusion{TP: 15, TN: 45}) {
		t.Errorf("good, first minute: %+v", g0)
	}
	if g1.N != 60 || !math.IsNaN(g1.AUC) || g1.Confusion != (online.Confusion{TN: 60}) {
		t.Errorf("good, second minute (no positives): %+v", g1)
	}
	// coin: scores 0, .5, 1 by i%3; positives at i%4 == 0. Computed by hand from AUC's
	// definition below.
	var scores []float64
	var labels []bool
	for i := range 60 {
		scores, labels = append(scores, float64(i%3)/2), append(labels, i%4 == 0)
	}
	if want := online.AUC(scores, labels); c0.N != 60 || math.Abs(c0.AUC-want) > 1e-12 {
		t.Errorf("coin, first minute: %+v; want AUC %v", c0, want)
	}
}
