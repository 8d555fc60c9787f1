package online

import (
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Labelled is a prediction joined with its label: what Metrics measures.
type Labelled struct {
	Version string
	Score   float64
	Label   bool
}

// Metric is the quality of one model version over one event-time window of labelled
// predictions.
type Metric struct {
	Version string `json:"version"`
	// Start and End bound the window, [Start, End) in Unix ms.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	N     int   `json:"n"`
	// AUC is NaN when the window holds one class only; Precision and Recall are at the
	// threshold Metrics was given (NaN without a positive prediction, or label).
	AUC       float64   `json:"auc"`
	Precision float64   `json:"precision"`
	Recall    float64   `json:"recall"`
	Confusion Confusion `json:"confusion"`
}

// Metrics measures labelled predictions per model version and event-time window w: ROC-AUC,
// and precision and recall at threshold. s needs timestamps (graph.Timestamps, or the time
// an interval join gives its results).
func Metrics[T any](s graph.Stream[T], labelled func(T) Labelled, w stream.WindowAssigner, threshold float64) graph.Stream[Metric] {
	ls := graph.Map(s, labelled, graph.Name("labelled"))
	byVersion := graph.KeyBy(ls, func(l Labelled) string { return l.Version }, graph.WithCodec(stream.JSON[Labelled]()))
	return graph.ProcessWindow(byVersion, w, func(v string, win stream.TimeWindow, ls []Labelled, emit func(Metric)) {
		scores, labels := make([]float64, len(ls)), make([]bool, len(ls))
		var c Confusion
		for i, l := range ls {
			scores[i], labels[i] = l.Score, l.Label
			c = c.Add(l.Score, threshold, l.Label)
		}
		emit(Metric{Version: v, Start: win.Start, End: win.End, N: len(ls), AUC: AUC(scores, labels),
			Precision: c.Precision(), Recall: c.Recall(), Confusion: c})
	}, graph.Name("metrics"))
}
