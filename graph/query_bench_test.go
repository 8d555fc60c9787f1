package graph_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// BenchmarkQuery measures point queries and 100-key scans on a running job with 10,000
// string keys over 32 key groups, on each state backend (go test -run ^$ -bench Query
// ./graph/).
func BenchmarkQuery(b *testing.B) {
	const keys = 10_000
	key := func(i int64) string { return fmt.Sprintf("k%05d", i%keys) }
	want := map[string]int64{}
	for i := range int64(2 * keys) {
		want[key(i)]++
	}
	for _, backend := range []string{"memory", "badger"} {
		g := graph.New("bench-queries")
		src := graph.From(g, actortest.GatedSource(stream.Generate(1<<40, func(i int64) int64 { return i }), 2*keys, &actortest.Gate{}))
		counts := &latest[string]{m: map[string]int64{}}
		graph.Count(graph.KeyBy(src, key), graph.Name("count")).To(counts.sink())
		opts := []graph.JobOption{quiet, graph.Parallelism(1), graph.MaxKeyGroups(32)}
		if backend == "badger" {
			db, err := persistence.OpenBadger(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			opts = append(opts, graph.BadgerState(db))
		}
		job, err := g.Build(opts...)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- job.Run(ctx) }()
		counts.await(b, want)

		b.Run("point/"+backend, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := job.Query(ctx, "count", key(int64(i))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("scan100/"+backend, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				s, err := job.Scan(ctx, "count", graph.Scan{From: key(int64(i * 97)), Limit: 100})
				if err != nil || len(s.Entries) == 0 {
					b.Fatal(len(s.Entries), err)
				}
			}
		})
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			b.Fatal(err)
		}
	}
}
