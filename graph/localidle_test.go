package graph_test

import (
	"fmt"
	"testing"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// TestLocalAggregationIdleSource: a source that goes idle after some records (no end of
// input) must still see every key's final count reach the sink, through the linger drain of
// the combiner. The mini-batch drained there holds more partials per destination than a
// batch, so WriteAll fills buffers that append has grown past the batch size (capacities
// round up to size classes): the regression was a fast path that filled them without
// sending, and the drain then waited forever for a credit no batch would bring back.
func TestLocalAggregationIdleSource(t *testing.T) {
	for _, tc := range []struct {
		name          string
		keys, records int64
	}{
		{"under a batch of keys", 100, 1_000},
		{"many batches of keys", 3_000, 9_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := func(i int64) string { return fmt.Sprintf("k%05d", (i*7919)%tc.keys) }
			want := map[string]int64{}
			for i := range tc.records {
				want[key(i)]++
			}
			g := graph.New("local-agg-idle")
			src := graph.From(g, actortest.GatedSource(stream.Generate(1<<40, func(i int64) int64 { return i }), tc.records, &actortest.Gate{}))
			counts := &latest[string]{m: map[string]int64{}}
			graph.Count(graph.KeyBy(src, key), graph.Name("count"), graph.LocalAggregation(true)).To(counts.sink())
			runUntilCancelled(t, g, graph.Parallelism(1), graph.MaxKeyGroups(2))
			counts.await(t, want)
		})
	}
}
