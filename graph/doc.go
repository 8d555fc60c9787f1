// Package graph is Eddy's typed DSL: build a dataflow graph of stages, check it, and run it.
//
// Type-preserving steps are methods (Filter, To) where Go allows; type-changing steps are
// functions (Map, FlatMap, KeyBy, Aggregate), because Go methods cannot take type
// parameters. A wrong graph is an error from Build, before anything runs: a dangling output,
// a cycle, a duplicate stage name, a stream that crosses a re-partitioning boundary (KeyBy)
// without a Codec, a nil function.
//
// Build fuses consecutive stateless stages (Map, Filter, FlatMap, Merge, Partition,
// Broadcast, sinks) into the vertex of the source or keyed stage before them: one function
// chain run inside one actor, with no hop per stage. A hop exists only at KeyBy, where
// records are re-partitioned to key groups, and at Rebalance, an asynchronous boundary that
// spreads records round-robin over Parallelism instances. In front of the KeyBy of an
// Aggregate, Count or Reduce whose aggregator merges (stream.Merger), each upstream
// instance folds its records per key into partial results first and sends those (local
// aggregation, Flink's local-global aggregation); LocalAggregation(false) turns it off.
//
//	g := graph.New("wordcount")
//	lines := graph.From(g, stream.Lines("book.txt"))
//	words := graph.FlatMap(lines, func(line string, emit func(string)) {
//		for _, w := range strings.Fields(line) {
//			emit(w)
//		}
//	})
//	counts := graph.Count(graph.KeyBy(words, func(w string) string { return w }),
//		graph.Emit(stream.EmitAtEnd))
//	counts.To(stream.StdoutSink[stream.KV[string, int64]]())
//	err := g.Run(ctx, graph.Parallelism(2))
//
// # Tables
//
// ToTable materialises a keyed changelog (inserts are upserts, retractions deletes) as the
// latest value per key, Kafka Streams' KTable; its changelog (Table.ToStream) retracts a
// row's old value before it inserts the new one. JoinTables joins two tables (inner, left,
// outer) and AggregateTable regroups a table and aggregates each group, subtracting a
// row's old value from its old group before adding the new one: both emit the retractions
// that keep a downstream table right after every change.
//
// # Interactive queries
//
// A running job answers questions about its keyed state, as Kafka Streams' interactive
// queries do: Job.Query returns one key's state, Job.Scan the keys of a range in the order
// of their bytes, each with the checkpoint and watermark it reflects; the admin endpoint
// serves them as /state/{stage}, and on a cluster every node routes them to the key's owner.
//
//	r, err := job.Query(ctx, "per-user", "alice")
//	s, err := job.Scan(ctx, "per-user", graph.Scan{Prefix: "user-", Limit: 50})
package graph
