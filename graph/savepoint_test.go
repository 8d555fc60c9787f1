package graph_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// A savepoint taken while a job runs restores into a new job that ends with exactly the
// counts of an uninterrupted run.
func TestSavepointRestore(t *testing.T) {
	const n = 400_000
	key := func(i int64) int64 { return i % 13 }
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type counts struct {
		mu   sync.Mutex
		last map[int64]int64
	}
	// The first run's sources stop a quarter of the way in until the savepoint is taken, so
	// that it is taken mid-run.
	gate := &actortest.Gate{}
	build := func(c *counts, opts ...graph.JobOption) *graph.Job {
		g := graph.New("sp")
		src := graph.From(g, actortest.GatedSource(stream.Generate(n, func(i int64) int64 { return i }), n/8, gate), graph.Name("src"))
		graph.Count(graph.KeyBy(src, key)).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, r := range recs {
				c.last[r.Value.Key] = r.Value.Value
			}
			return nil
		}))
		return build(t, g, append([]graph.JobOption{graph.Parallelism(2)}, opts...)...)
	}
	first := &counts{last: map[int64]int64{}}
	job := build(first, graph.Checkpoints(store, time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	for statsOf(t, job, "src").In == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := job.Savepoint(ctx, "before-upgrade"); err != nil {
		t.Fatal(err)
	}
	gate.Open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	names, err := store.ListSavepoints(ctx)
	if err != nil || len(names) != 1 || names[0] != "before-upgrade" {
		t.Fatalf("savepoints %v, %v", names, err)
	}

	second := &counts{last: map[int64]int64{}}
	job2 := build(second, graph.Checkpoints(store, time.Hour), graph.FromSavepoint(store, "before-upgrade"))
	if err := job2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// The second job read only what came after the savepoint; its state brought the rest.
	if in := statsOf(t, job2, "src").In; in == 0 || in >= n {
		t.Errorf("the restored job read %d records; want fewer than %d (it starts at the savepoint)", in, n)
	}
	for k := range int64(13) {
		want := int64(n / 13)
		if k < n%13 {
			want++
		}
		if second.last[k] != want {
			t.Errorf("key %d: %d after restoring the savepoint, want %d", k, second.last[k], want)
		}
	}
}
