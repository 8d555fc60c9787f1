// Package kafka connects Eddy to Kafka (on github.com/twmb/franz-go): a source whose topic
// partitions are the job's source splits, with offsets in Eddy's checkpoints and watermarks
// per partition, an at-least-once sink, and an exactly-once sink whose Kafka transactions
// commit with Eddy's checkpoints.
//
// The smallest use: read JSON clicks, count them per user, write the counts exactly once.
//
//	cfg := kafka.Config{Brokers: []string{"localhost:9092"}}
//	g := graph.New("clicks")
//	clicks := graph.From(g, kafka.Source(cfg, []string{"clicks"}, kafka.Values(stream.JSON[Click]())))
//	counts := graph.Count(graph.KeyBy(clicks, func(c Click) string { return c.User }, graph.WithCodec(stream.JSON[Click]())))
//	sink, err := kafka.ExactlyOnce(cfg, "counts", kafka.KeyedValues(stream.JSON[stream.KV[string, int64]](),
//		func(kv stream.KV[string, int64]) string { return kv.Key }), "clicks-counts")
//	counts.To(sink)
//	err = g.Run(ctx, graph.Checkpoints(store, time.Second))
//
// Partitions are spread over the splits by a fixed rule, not by a consumer group: a split
// reads its partitions directly, starts where its checkpoint says (or where StartFrom says
// on a first run), and finds partitions added while it runs (DiscoverEvery). Offsets may be
// committed to a group as a courtesy for lag monitoring (CommitOffsetsTo); Stats reports
// the lag per partition.
//
// With Watermarks, each partition has its own watermark generator and a split's watermark
// is the minimum over its partitions, leaving out those idle for IdleAfter: one quiet
// partition does not stall event time. Do not follow the source with graph.Timestamps,
// which would replace those watermarks.
//
// The exactly-once sink needs checkpoints (graph.Checkpoints) and readers with
// read_committed isolation; see ExactlyOnce for the protocol and its limits, and
// examples/kafkaexactlyonce for a job that survives SIGKILL at any moment. It has one
// transactional producer per writer instance; a sink right after a keyed stage runs in
// each of its key groups (128 by default), so set graph.MaxKeyGroups lower, or put
// graph.Rebalance before the sink, to keep the producers and the transactions per
// checkpoint few.
package kafka
