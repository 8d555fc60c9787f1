// Command fraud is the AI pipeline of issue 12 end to end, with no outside service:
// generated card transactions → features per card (EMA of the amount, distinct merchants in
// the hour with HyperLogLog, time since the card's last transaction) → a model in two
// versions, A/B by card (A: an ONNX logistic model in ONNX Runtime; B: learned online) →
// a rule (score > 0.8 → alert) → alerts as JSON lines. Labels arrive 30 s (event time)
// after their transactions and are joined to the predictions by id (interval join); the
// joined feedback trains version B, which is published and hot-swapped in every -publish
// labels, and gives ROC-AUC, precision and recall per 10-minute window and version. Amounts
// inflate by half at mid-run, which the drift watch on amounts reports.
//
//	go run ./examples/fraud -n 200000 -alerts alerts.jsonl -training-log train.jsonl
//
// Without the ONNX Runtime library (bash .ci/install-onnxruntime.sh), version A runs the same
// weights as a Go function, with a warning.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sync"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/sketches"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/features"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/drift"
	"github.com/eddyflow/eddy/stream/infer/online"
	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
	"github.com/eddyflow/eddy/stream/infer/onnxrt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error("fraud", "err", err)
		os.Exit(1)
	}
}

// config is what the flags say.
type config struct {
	n           int64
	seed        uint64
	alerts      string
	trainingLog string
	publish     int64
	threshold   float64
}

// Txn is a card transaction; Fraud is the truth, which the pipeline learns only from the
// delayed label.
type Txn struct {
	ID       int64
	Card     string
	Merchant string
	Amount   float64
	At       int64 // Unix ms
	Fraud    bool
}

// Enriched is a transaction with its features: the model's input row.
type Enriched struct {
	Txn      Txn
	Features []float32
}

// Label is the truth about a transaction, known Delay after it.
type Label struct {
	ID    int64
	Fraud bool
	At    int64
}

// Feedback is a prediction joined with its label: a line of the training log.
type Feedback struct {
	ID       int64     `json:"id"`
	Version  string    `json:"version"`
	Score    float32   `json:"score"`
	Features []float32 `json:"features"`
	Label    bool      `json:"label"`
	At       int64     `json:"at"`
}

const (
	cards      = 2000
	merchants  = 300
	every      = 50 * time.Millisecond // one transaction per 50 ms of event time
	labelDelay = 30 * time.Second
	window     = 10 * time.Minute
	fraudRate  = 0.02
)

// Generation of transactions, reproducible from the seed and the index: the same
// transaction i for the transaction source and for the label source.
type generator struct {
	seed  uint64
	n     int64
	usual []float64 // per card: its usual amount
}

func newGenerator(seed uint64, n int64) *generator {
	rng := rand.New(rand.NewPCG(seed, 0))
	g := &generator{seed: seed, n: n, usual: make([]float64, cards)}
	for i := range g.usual {
		g.usual[i] = math.Exp(3 + rng.NormFloat64()*0.6) // about 20, spread
	}
	return g
}

func (g *generator) txn(i int64) Txn {
	rng := rand.New(rand.NewPCG(g.seed, uint64(i)+1))
	card := rng.IntN(cards)
	t := Txn{ID: i, Card: fmt.Sprint("card-", card), At: i * every.Milliseconds()}
	t.Fraud = rng.Float64() < fraudRate
	usual := g.usual[card]
	if i >= g.n/2 {
		usual *= 1.5 // inflation at mid-run: the drift watch sees the amounts move
	}
	if t.Fraud {
		t.Amount = usual * (4 + 6*rng.Float64())
		t.Merchant = fmt.Sprint("merchant-", merchants+rng.IntN(1000)) // far from the card's own
	} else {
		t.Amount = usual * math.Exp(rng.NormFloat64()*0.3)
		t.Merchant = fmt.Sprint("merchant-", (card*7+rng.IntN(5))%merchants) // a few regulars
	}
	return t
}

// Width of the feature row: log amount / EMA, distinct merchants this hour, log(1 + seconds
// since the card's last transaction), log amount.
const width = 4

// expert is version A's weights: what an analyst would write down.
var expertW, expertB = []float32{2.5, 0.4, -0.3, 0.2}, float32(-3.5)

func run(ctx context.Context, args []string, log *slog.Logger) error {
	var c config
	fs := flag.NewFlagSet("fraud", flag.ContinueOnError)
	fs.Int64Var(&c.n, "n", 200_000, "transactions to generate")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the generator")
	fs.StringVar(&c.alerts, "alerts", "", "`FILE` for the alerts as JSON lines (default: discard)")
	fs.StringVar(&c.trainingLog, "training-log", "", "`FILE` for the training log as JSON lines (default: none)")
	fs.Int64Var(&c.publish, "publish", 5000, "labels between two published versions of the online model")
	fs.Float64Var(&c.threshold, "threshold", 0.8, "score above which a transaction is an alert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.n < 1 || c.publish < 1 {
		return errors.New("-n and -publish must be at least 1")
	}
	res, err := pipeline(ctx, c, log)
	if err != nil {
		return err
	}
	res.log(log)
	return nil
}

// result is what a run found.
type result struct {
	alerts, published int64
	metrics           []online.Metric
	drifts            []drift.Event
	stats             map[string]infer.VersionStats
}

func (r result) log(log *slog.Logger) {
	for _, m := range r.metrics {
		log.Info("window", "version", m.Version, "start", time.UnixMilli(m.Start).UTC().Format(time.TimeOnly), "labelled", m.N,
			"auc", fmt.Sprintf("%.3f", m.AUC), "precision", fmt.Sprintf("%.2f", m.Precision), "recall", fmt.Sprintf("%.2f", m.Recall))
	}
	for _, d := range r.drifts {
		log.Info("drift", "window", time.UnixMilli(d.Start).UTC().Format(time.TimeOnly), "psi", fmt.Sprintf("%.2f", d.PSI), "ks", fmt.Sprintf("%.2f", d.KS))
	}
	for _, v := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.stats {
			if !yield(k) {
				return
			}
		}
	}) {
		s := r.stats[v]
		log.Info("version", "name", v, "scored", s.Records, "requests", s.Batches, "p50", s.P50, "p99", s.P99)
	}
	log.Info("done", "alerts", r.alerts, "online versions published", r.published, "drift events", len(r.drifts))
}

// versionA loads the expert model in ONNX Runtime, or runs its weights in Go when the
// library is missing.
func versionA(log *slog.Logger) (infer.Model, error) {
	w := make([][]float32, width)
	for i := range w {
		w[i] = []float32{expertW[i]}
	}
	data, err := onnxmodel.Logistic(w, []float32{expertB}, onnxmodel.Options{Version: 1, Name: "expert"})
	if err != nil {
		return nil, err
	}
	m, err := onnxrt.Load(data)
	if err == nil {
		return m, nil
	}
	log.Warn("version A runs in Go: ONNX Runtime is not available", "err", err)
	return infer.RowFunc(func(row []float32) []float32 {
		z := float64(expertB)
		for i, x := range row {
			z += float64(expertW[i]) * float64(x)
		}
		return []float32{float32(1 / (1 + math.Exp(-z)))}
	}), nil
}

func pipeline(ctx context.Context, c config, log *slog.Logger) (result, error) {
	gen := newGenerator(c.seed, c.n)
	a, err := versionA(log)
	if err != nil {
		return result{}, err
	}
	learner := online.NewLogistic(width, 0.05)
	versions := infer.NewVersions()
	defer versions.Close() // closes version A's ONNX session, and replaced versions
	if err := versions.Set("A", a, 50); err != nil {
		return result{}, err
	}
	if err := versions.Set("B", learner.Snapshot(), 50); err != nil {
		return result{}, err
	}

	g := graph.New("fraud")
	txns := graph.Timestamps(graph.From(g, stream.Generate(c.n, gen.txn), graph.Name("txns")),
		func(t Txn) int64 { return t.At }, stream.BoundedOutOfOrder[Txn](0))

	// Features per card.
	perCard := graph.KeyBy(txns, func(t Txn) string { return t.Card }, graph.WithCodec(stream.JSON[Txn]()))
	enriched := graph.Process(perCard, cardFeatures(), graph.Name("features"))

	// The model, A/B by card, then the rule.
	scored := infer.Stage(enriched, versions, func(e Enriched) []float32 { return e.Features },
		infer.Key(func(e Enriched) string { return e.Txn.Card }), infer.MaxBatch(64), infer.Concurrency(2), infer.Name("model"),
		infer.WithCodec(stream.JSON[Enriched]()))
	var alerts stream.Sink[infer.Scored[Enriched]] = stream.FuncSink(func([]stream.Record[infer.Scored[Enriched]]) error { return nil })
	if c.alerts != "" {
		if alerts, err = stream.JSONLFileSink[infer.Scored[Enriched]](c.alerts); err != nil {
			return result{}, err
		}
	}
	var alertCount int64
	var mu sync.Mutex
	scored.Filter(func(s infer.Scored[Enriched]) bool { return float64(s.Output[0]) > c.threshold }, graph.Name("rule")).
		To(stream.FuncSink(func(recs []stream.Record[infer.Scored[Enriched]]) error {
			mu.Lock()
			alertCount += int64(len(recs))
			mu.Unlock()
			return alerts.WriteBatch(recs)
		}), graph.Name("alerts"))

	// Delayed labels, joined to the predictions by id.
	labels := graph.Timestamps(graph.Map(graph.From(g, stream.Generate(c.n, gen.txn), graph.Name("labels")), func(t Txn) Label {
		return Label{ID: t.ID, Fraud: t.Fraud, At: t.At + labelDelay.Milliseconds()}
	}), func(l Label) int64 { return l.At }, stream.BoundedOutOfOrder[Label](0))
	feedback := graph.IntervalJoin(
		graph.KeyBy(scored, func(s infer.Scored[Enriched]) int64 { return s.In.Txn.ID }, graph.WithCodec(stream.JSON[infer.Scored[Enriched]]())),
		graph.KeyBy(labels, func(l Label) int64 { return l.ID }, graph.WithCodec(stream.JSON[Label]())),
		0, labelDelay+time.Second,
		func(s infer.Scored[Enriched], l Label) Feedback {
			return Feedback{ID: l.ID, Version: s.Version, Score: s.Output[0], Features: s.In.Features, Label: l.Fraud, At: l.At}
		}, graph.Name("feedback"))

	// Online learning: version B is republished every c.publish labels.
	var published int64
	online.Train(feedback, func(f Feedback) ([]float32, bool) { return f.Features, f.Label }, learner, c.publish, func(n int64, m infer.Model) {
		if err := versions.Set("B", m, 50); err != nil {
			log.Error("publish version B", "err", err)
			return
		}
		mu.Lock()
		published++
		mu.Unlock()
	}).To(stream.FuncSink(func([]stream.Record[int64]) error { return nil }), graph.Name("published"))

	// Quality per window and version.
	var metrics []online.Metric
	online.Metrics(feedback, func(f Feedback) online.Labelled {
		return online.Labelled{Version: f.Version, Score: float64(f.Score), Label: f.Label}
	}, stream.Tumbling(window), c.threshold).
		To(stream.FuncSink(func(recs []stream.Record[online.Metric]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				metrics = append(metrics, r.Value)
			}
			return nil
		}), graph.Name("metrics-out"))

	// The training log.
	if c.trainingLog != "" {
		tl, err := stream.JSONLFileSink[Feedback](c.trainingLog)
		if err != nil {
			return result{}, err
		}
		feedback.To(tl, graph.Name("training-log"))
	}

	// Drift of the amounts against the first hour's distribution, per window.
	ref := make([]float64, 0, 5000)
	for i := range min(c.n/2, 5000) {
		ref = append(ref, math.Log(gen.txn(i).Amount))
	}
	reference, err := drift.NewReference(ref, 10)
	if err != nil {
		return result{}, err
	}
	var drifts []drift.Event
	drift.Watch(txns, func(t Txn) float64 { return math.Log(t.Amount) }, stream.Tumbling(window), drift.Detector{Reference: reference, PSI: 0.2, Alpha: 0.001}).
		To(stream.FuncSink(func(recs []stream.Record[drift.Event]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				drifts = append(drifts, r.Value)
			}
			return nil
		}), graph.Name("drift-out"))

	start := time.Now()
	if err := g.Run(ctx, graph.Parallelism(2), graph.Logger(log)); err != nil {
		return result{}, fmt.Errorf("run the fraud pipeline: %w", err)
	}
	if c.alerts != "" {
		if err := alerts.Close(); err != nil {
			return result{}, err
		}
	}
	log.Info("ran", "transactions", c.n, "took", time.Since(start).Round(time.Millisecond))
	slices.SortFunc(metrics, func(a, b online.Metric) int {
		if a.Start != b.Start {
			return int(a.Start - b.Start)
		}
		return compareStrings(a.Version, b.Version)
	})
	slices.SortFunc(drifts, func(a, b drift.Event) int { return int(a.Start - b.Start) })
	return result{alerts: alertCount, published: published, metrics: metrics, drifts: drifts, stats: versions.Stats()}, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cardFeatures keeps, per card, an EMA of its amounts (half-life 1 h), a HyperLogLog of its
// merchants in the current hour, and the time of its last transaction.
func cardFeatures() stream.KeyedProcess[string, Txn, Enriched] {
	ema := stream.NewValueState[features.EMA]("ema")
	hour := stream.NewValueState[int64]("hour")
	seen := stream.NewValueState[*sketches.HyperLogLog]("merchants")
	gap := stream.NewValueState[features.Gap]("gap")
	return stream.KeyedProcess[string, Txn, Enriched]{
		OnRecord: func(ctx stream.Context[string], t Txn, out stream.Emitter[Enriched]) error {
			e, _ := ema.Get(ctx)
			prior := e.Value()
			ema.Set(ctx, e.Add(t.Amount, t.At, time.Hour))

			h := t.At / time.Hour.Milliseconds()
			hll, ok := seen.Get(ctx)
			if cur, _ := hour.Get(ctx); !ok || cur != h {
				var err error
				if hll, err = sketches.NewHyperLogLog(sketches.HyperLogLogConfig{Precision: 10}); err != nil {
					return err
				}
				hour.Set(ctx, h)
			}
			hll.Add(t.Merchant)
			seen.Set(ctx, hll)

			gp, _ := gap.Get(ctx)
			gp = gp.Add(t.At)
			gap.Set(ctx, gp)

			ratio := 0.0
			if prior > 0 {
				ratio = math.Log(t.Amount / prior)
			}
			since := gp.Since().Seconds()
			if gp.N < 2 {
				since = 3600
			}
			out.Emit(Enriched{Txn: t, Features: []float32{float32(ratio), float32(hll.Estimate()), float32(math.Log1p(since)), float32(math.Log(t.Amount))}})
			return nil
		},
	}
}
