package online_test

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/online"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAUCAndConfusion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{"inverted", []float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{"all ties", []float64{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5},
		{"one swap", []float64{0.1, 0.6, 0.4, 0.9}, []bool{false, false, true, true}, 0.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := online.AUC(tc.scores, tc.labels); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("AUC %v, want %v", got, tc.want)
			}
		})
	}
	if !math.IsNaN(online.AUC([]float64{1, 2}, []bool{true, true})) {
		t.Error("AUC with one class is not NaN")
	}
	var c online.Confusion
	for i, s := range []float64{0.9, 0.8, 0.3, 0.7, 0.1} {
		c = c.Add(s, 0.5, []bool{true, false, true, true, false}[i])
	}
	if c != (online.Confusion{TP: 2, FP: 1, TN: 1, FN: 1}) || math.Abs(c.Precision()-2.0/3) > 1e-12 || math.Abs(c.Recall()-2.0/3) > 1e-12 {
		t.Errorf("confusion %+v, precision %v, recall %v", c, c.Precision(), c.Recall())
	}
}

// example is a labelled record of a separable problem: y = w*·x + b* > 0.
type example struct {
	X []float32
	Y bool
}

var truth = []float64{1.5, -2, 0.5, 1}

func examples(seed uint64, n int) []example {
	rng := rand.New(rand.NewPCG(seed, 99))
	out := make([]example, n)
	for i := range out {
		x := make([]float32, len(truth))
		z := -0.25
		for j := range x {
			x[j] = float32(rng.NormFloat64())
			z += truth[j] * float64(x[j])
		}
		out[i] = example{X: x, Y: z > 0}
	}
	return out
}

// Online learning in a job: the learner trains on the labelled stream and publishes a
// version every 1000 labels into a Versions, hot-swapped; the held-back stream, scored
// through the inference stage by the last version, reaches an AUC above 0.9 (from 0.5
// untrained).
func TestTrainPublishesVersionsThatLearn(t *testing.T) {
	train, holdout := examples(1, 20_000), examples(2, 5_000)
	l := online.NewLogistic(len(truth), 0.05)
	vs := infer.NewVersions()
	if err := vs.Set("online", l.Snapshot(), 1); err != nil {
		t.Fatal(err)
	}
	auc := func(m infer.Model) float64 {
		rows := make([][]float32, len(holdout))
		labels := make([]bool, len(holdout))
		for i, e := range holdout {
			rows[i], labels[i] = e.X, e.Y
		}
		out, err := m.Infer(context.Background(), rows)
		if err != nil {
			t.Fatal(err)
		}
		scores := make([]float64, len(out))
		for i := range out {
			scores[i] = float64(out[i][0])
		}
		return online.AUC(scores, labels)
	}
	untrained := auc(l.Snapshot())
	var mu sync.Mutex
	var aucs []float64
	g := graph.New("online")
	published := online.Train(graph.From(g, stream.Slice(train)), func(e example) ([]float32, bool) { return e.X, e.Y }, l, 1000, func(n int64, m infer.Model) {
		if err := vs.Set("online", m, 1); err != nil {
			t.Error(err)
		}
		mu.Lock()
		aucs = append(aucs, auc(m))
		mu.Unlock()
	})
	counts := stream.NewCollectSink[int64]()
	published.To(counts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []graph.JobOption{graph.Parallelism(2), graph.Logger(slog.New(slog.DiscardHandler))}
	if err := g.Run(ctx, opts...); err != nil {
		t.Fatal(err)
	}
	if len(counts.Values()) != 20 || len(aucs) != 20 {
		t.Fatalf("%d versions published (%d AUCs), want 20", len(counts.Values()), len(aucs))
	}

	// The held-back stream, through the stage, by whatever version is live now: the last.
	g2 := graph.New("holdout")
	scored := stream.NewCollectSink[infer.Scored[example]]()
	infer.Stage(graph.From(g2, stream.Slice(holdout)), vs, func(e example) []float32 { return e.X }).To(scored)
	if err := g2.Run(ctx, opts...); err != nil {
		t.Fatal(err)
	}
	var scores []float64
	var labels []bool
	for _, s := range scored.Values() {
		scores, labels = append(scores, float64(s.Output[0])), append(labels, s.In.Y)
	}
	final := online.AUC(scores, labels)
	t.Logf("AUC on the held-back stream: untrained %.3f, after each 1000 labels %.3f, through the stage %.4f", untrained, aucs, final)
	if untrained != 0.5 || final <= 0.9 || final < aucs[0] {
		t.Errorf("AUC untrained %.3f, final %.4f (first version %.3f); want 0.5 rising above 0.9", untrained, final, aucs[0])
	}
	if st := vs.Stats()["online"]; st.Records != int64(len(holdout)) {
		t.Errorf("the online version scored %d records, want %d", st.Records, len(holdout))
	}
}
