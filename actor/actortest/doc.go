// Package actortest is Eddy's testing kit: a Probe for plain Proto.Actor actors, and a
// StageHarness that runs stages deterministically on one goroutine with a manual clock.
//
// A StageHarness feeds an input stream that a test builds on, runs the compiled stages with
// actor.SyncDriver (the same instance logic as the Proto.Actor runtime: batches, credits,
// linger, timers, end of input), and lets the test read outputs, side outputs, dead letters
// and keyed state. Time moves only when the test says, so timers fire without sleeps:
//
//	h := actortest.NewStageHarness[Click](t)
//	counts := graph.Count(graph.KeyBy(h.Input(), func(c Click) string { return c.User }))
//	out := actortest.Collect(h, counts)
//	h.Push(Click{User: "ann"}, 1000)
//	h.Advance(5 * time.Second) // fires linger and processing-time timers that fall due
//	got := out.Values()        // [{ann 1}]
//	n, _ := h.State(counts.Name(), "ann")
//
// By default the harness sends every record as its own batch (graph.BatchSize(1)), so each
// record is handled before the next is pushed; pass graph.BatchSize to test batching.
package actortest
