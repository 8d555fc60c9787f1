// Package features computes streaming features of the kind a model takes: an exponential
// moving average in event time, mean and variance (Welford) over a count window or an
// event-time window, the time since the previous event. Each is a plain value type with an
// Add method (pure: no goroutines, no clock) and a stream.Aggregator, so it runs per key in
// graph.Aggregate (running) or graph.Window (per window):
//
//	perCard := graph.KeyBy(txns, func(t Txn) string { return t.Card })
//	ema := graph.Aggregate(perCard, features.EMAOf(func(t Txn) (float64, int64) { return t.Amount, t.At }, time.Hour))
//	stats := graph.Window(perCard, stream.Tumbling(time.Hour), features.MeanVarOf(func(t Txn) float64 { return t.Amount }))
//
// Distinct counts per key are sketches.HyperLogLog's; Vector turns a record into the input
// row of a model (infer.Stage's features function).
package features
