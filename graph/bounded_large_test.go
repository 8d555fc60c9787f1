//go:build !race

package graph_test

import (
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// The tests of 1,000,000 keys firing at once. They run on the sync driver, one goroutine, so
// the race detector has nothing to find in them, and makes each take a minute (the FlatMap,
// join and timer tests in bounded_test.go, one of them on Proto.Actor, run under it).

func TestBoundedWindowFiring(t *testing.T) {
	h := boundedHarness[int64](t)
	counts := graph.Window(graph.KeyBy(h.Input(), identity), stream.Tumbling(time.Second), agg.Count[int64]())
	probe := probed(graph.Map(counts, func(r stream.WindowResult[int64, int64]) int64 { return r.Key*2 + r.Value }))
	pushKeys(h, firingKeys, 0)
	h.Flush()
	measureEmission(t, probe, firingKeys, func() {
		h.Watermark(time.Second.Milliseconds())
		h.Flush()
	})
	if err := h.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBoundedAggregateAtEnd(t *testing.T) {
	h := boundedHarness[int64](t)
	counts := graph.Aggregate(graph.KeyBy(h.Input(), identity), agg.Count[int64](), graph.Emit(stream.EmitAtEnd))
	probe := probed(graph.Map(counts, func(kv stream.KV[int64, int64]) int64 { return kv.Key*2 + kv.Value }))
	pushKeys(h, firingKeys, 0)
	h.Flush()
	measureEmission(t, probe, firingKeys, h.End)
	if err := h.Err(); err != nil {
		t.Fatal(err)
	}
	if !h.Done() {
		t.Error("the job did not finish after the end of input")
	}
}
