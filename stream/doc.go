// Package stream is Eddy's data model: the Record envelope, codecs, keyed state and timers,
// clocks, sources and sinks.
//
// Everything here is pure logic: no goroutines are started and the time comes in as an
// argument or through a Clock. The actor package drives these types; tests can drive them
// directly.
//
// The smallest use is a source and a sink handed to the graph package:
//
//	g := graph.New("numbers")
//	nums := graph.From(g, stream.Slice([]int{1, 2, 3}))
//	graph.To(nums, stream.StdoutSink[int]())
package stream
