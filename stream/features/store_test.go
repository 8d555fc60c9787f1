package features_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/features"
)

type lookup struct {
	Card string
	At   int64
}

type answer struct {
	Card  string
	At    int64
	EMA   float64
	Found bool
}

// A keyed table of the latest features, joinable by other streams: the running EMA per card
// (graph.Aggregate, one update per transaction) is the table; a stream of lookups joins it
// as of each lookup's event time (graph.TemporalJoin), and sees exactly the EMA of the
// card's transactions before it. The table's versions are stamped with the latest event
// time folded in, so "as of t" is exact when a key's records arrive in event-time order:
// here one split (parallelism 1); with splits that interleave out of order, a version
// holds what had arrived.
func TestFeatureTableJoinedByAnotherStream(t *testing.T) {
	const halfLife = time.Minute
	var txns []txn
	for i := range 300 {
		txns = append(txns, txn{Card: []string{"a", "b"}[i%2], Amount: float64(i%17 + 1), At: int64(i) * 1000})
	}
	var lookups []lookup
	for i := range 30 {
		lookups = append(lookups, lookup{Card: []string{"a", "b", "c"}[i%3], At: int64(i)*10_000 + 500})
	}
	g := graph.New("feature-table")
	ts := graph.Timestamps(graph.From(g, stream.Slice(txns)), func(t txn) int64 { return t.At }, stream.BoundedOutOfOrder[txn](0))
	perCard := graph.KeyBy(ts, func(t txn) string { return t.Card }, graph.WithCodec(stream.JSON[txn]()))
	table := graph.Aggregate(perCard, features.EMAOf(func(t txn) (float64, int64) { return t.Amount, t.At }, halfLife), graph.Emit(stream.EmitEveryUpdate))
	ls := graph.Timestamps(graph.From(g, stream.Slice(lookups)), func(l lookup) int64 { return l.At }, stream.BoundedOutOfOrder[lookup](0))
	joined := graph.TemporalJoin(
		graph.KeyBy(ls, func(l lookup) string { return l.Card }, graph.WithCodec(stream.JSON[lookup]())),
		graph.KeyBy(table, func(kv stream.KV[string, float64]) string { return kv.Key }, graph.WithCodec(stream.JSON[stream.KV[string, float64]]())),
		func(l lookup, kv stream.KV[string, float64], found bool) (answer, bool) {
			return answer{Card: l.Card, At: l.At, EMA: kv.Value, Found: found}, true
		})
	out := stream.NewCollectSink[answer]()
	joined.To(out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx, graph.Parallelism(1), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
	if len(out.Values()) != len(lookups) {
		t.Fatalf("%d answers for %d lookups", len(out.Values()), len(lookups))
	}
	for _, a := range out.Values() {
		var e features.EMA
		for _, tx := range txns {
			if tx.Card == a.Card && tx.At <= a.At {
				e = e.Add(tx.Amount, tx.At, halfLife)
			}
		}
		if a.Found != (e.N > 0) || !near(a.EMA, e.Value(), 1e-12) {
			t.Errorf("lookup of %s at %d: %+v; want EMA %v (found %v)", a.Card, a.At, a, e.Value(), e.N > 0)
		}
	}
}
