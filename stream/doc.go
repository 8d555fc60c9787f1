// Package stream is what a job's stages are written against: the Record envelope, codecs,
// sources and sinks, window assigners and triggers, watermark strategies, the interfaces of
// aggregators and keyed process functions (Context, Emitter) with their state handles
// (ValueState, MapState, ListState), and clocks. The built-in aggregators are in package
// stream/agg; the engine's operators are internal.
//
// Names say what a thing is: sinks end in Sink, state handles in State, a window assigner
// (Tumbling, Hopping, Session, Sliding, Global) is a WindowAssigner and the span it assigns a
// TimeWindow.
//
// Nothing here starts a goroutine or reads the time: time comes in as an argument or through
// a Clock. The smallest use is a source and a sink handed to the graph package:
//
//	g := graph.New("numbers")
//	nums := graph.From(g, stream.Slice([]int{1, 2, 3}))
//	graph.Map(nums, func(n int) int { return n * n }).To(stream.StdoutSink[int]())
//	err := g.Run(ctx, graph.Parallelism(1))
package stream
