// Package agg holds the built-in aggregators: Count, Sum, Avg, Min, Max and Reduce, for
// graph.Aggregate and graph.Window. An aggregator folds a key's (or a window's) values into an
// accumulator; those that can take a value back (Count, Sum, Avg) apply retractions, and all
// of them merge, so they work with session windows. Approximate aggregators (distinct
// counts, top-k, quantiles) are in package sketches.
//
//	perUser := graph.KeyBy(clicks, func(c Click) string { return c.User }, graph.WithCodec(stream.JSON[Click]()))
//	counts := graph.Window(perUser, stream.Tumbling(time.Minute), agg.Count[Click]())
package agg
