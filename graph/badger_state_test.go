package graph_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// With the Badger state backend, a key group's accumulators live in Badger: counts are exact
// though the cache holds few keys, and a second job over the same database goes on from the
// first one's counts.
func TestBadgerState(t *testing.T) {
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n, keys = 60_000, 20_000
	runOnce := func() map[int64]int64 {
		var mu sync.Mutex
		last := map[int64]int64{}
		g := graph.New("badger")
		src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i % keys }))
		graph.Count(graph.KeyBy(src, func(k int64) int64 { return k })).To(stream.Func(func(recs []stream.Record[stream.KV[int64, int64]]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				last[r.Value.Key] = r.Value.Value
			}
			return nil
		}))
		run(t, g, graph.Parallelism(2), graph.MaxKeyGroups(4), graph.BadgerState(db))
		return last
	}
	for round, want := range []int64{n / keys, 2 * n / keys} {
		got := runOnce()
		if len(got) != keys {
			t.Fatalf("round %d: %d keys counted, want %d", round, len(got), keys)
		}
		for k, c := range got {
			if c != want {
				t.Fatalf("round %d: key %d counted %d, want %d", round, k, c, want)
			}
		}
	}
}

// A savepoint of a job on the Badger backend holds its state as of the barrier, though
// Badger moves on: restored over the same database (which by then holds the first job's
// final counts), the counts end exact, not doubled. Memory and Badger snapshots are the
// same bytes, so a savepoint moves between backends both ways.
func TestBadgerStateSavepoint(t *testing.T) {
	const n, keys = 200_000, 50_000
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct{ name, from, to string }{
		{"badger to badger", "badger", "badger"},
		{"memory to badger", "memory", "badger"},
		{"badger to memory", "badger", "memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := persistence.OpenDirCheckpoints(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			last := map[int64]int64{}
			newJob := func(backend string, opts ...graph.JobOption) *graph.Job {
				g := graph.New("badger-sp")
				src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i }), graph.Name("src"))
				slow := graph.Map(src, func(i int64) int64 {
					if i%500 == 0 {
						time.Sleep(time.Millisecond) // long enough to savepoint it mid-run
					}
					return i % keys
				})
				graph.Count(graph.KeyBy(slow, func(k int64) int64 { return k })).To(stream.Func(func(recs []stream.Record[stream.KV[int64, int64]]) error {
					mu.Lock()
					defer mu.Unlock()
					for _, r := range recs {
						last[r.Value.Key] = r.Value.Value
					}
					return nil
				}))
				opts = append(opts, graph.Parallelism(2), graph.MaxKeyGroups(4), graph.Checkpoints(store, time.Hour))
				if backend == "badger" {
					opts = append(opts, graph.BadgerState(db))
				}
				return build(t, g, opts...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			first := newJob(tc.from)
			done := make(chan error, 1)
			go func() { done <- first.Run(ctx) }()
			for statsOf(t, first, "src").In == 0 {
				time.Sleep(time.Millisecond)
			}
			if err := first.Savepoint(ctx, "mid"); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			clear(last)
			second := newJob(tc.to, graph.FromSavepoint(store, "mid"))
			if err := second.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if in := statsOf(t, second, "src").In; in == 0 || in >= n {
				t.Fatalf("the restored job read %d records; want fewer than %d; %+v", in, n, second.Stats())
			}
			if len(last) != keys {
				t.Fatalf("%d keys counted, want %d", len(last), keys)
			}
			for k, c := range last {
				if c != n/keys {
					t.Fatalf("key %d counted %d, want %d", k, c, n/keys)
				}
			}
		})
	}
}
