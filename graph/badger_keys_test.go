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

// A key group on Badger skips the lookup of a key its filter says is new, so the filter
// must know every key the state holds: those of a database opened again by a new process
// (at another parallelism), and those a restore from a checkpoint wrote into another
// database (a key group moved to another node). A key it forgot would start again from
// zero, and the counts would be short.
func TestBadgerStateFindsKeysAfterReopenAndRestore(t *testing.T) {
	const n, keys = 60_000, 15_000
	countJob := func(db *persistence.BadgerDB, last map[int64]int64, p int, cut *cutPoint, opts ...graph.JobOption) *graph.Job {
		var mu sync.Mutex
		g := graph.New("badger-keys")
		src := graph.From(g, cut.source(n), graph.Name("src"))
		perKey := graph.Map(src, func(i int64) int64 { return i % keys })
		graph.Count(graph.KeyBy(perKey, func(k int64) int64 { return k }), graph.Name("count")).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				last[r.Value.Key] = r.Value.Value
			}
			return nil
		}))
		return build(t, g, append(opts, graph.Parallelism(p), graph.MaxKeyGroups(4), graph.BadgerState(db))...)
	}
	exact := func(what string, last map[int64]int64, want int64) {
		t.Helper()
		if len(last) != keys {
			t.Fatalf("%s: %d keys counted, want %d", what, len(last), keys)
		}
		for k, c := range last {
			if c != want {
				t.Fatalf("%s: key %d counted %d, want %d", what, k, c, want)
			}
		}
	}

	t.Run("reopened", func(t *testing.T) {
		dir := t.TempDir()
		for round, p := range []int{2, 1} {
			db, err := persistence.OpenBadger(dir)
			if err != nil {
				t.Fatal(err)
			}
			last := map[int64]int64{}
			runToEnd(t, countJob(db, last, p, nil))
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			exact("after the reopen", last, int64(round+1)*n/keys)
		}
	})

	t.Run("restored into another database", func(t *testing.T) {
		store, err := persistence.OpenDirCheckpoints(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		first, err := persistence.OpenBadger(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		cut := &cutPoint{a: n / 8, b: n / 4}
		cutOff(t, countJob(first, map[int64]int64{}, 2, cut, graph.Checkpoints(store, 10*time.Millisecond)), 3, cut)
		// A job on an empty database (the key groups moved to a new node) starts from the
		// checkpoint: every key's count is restored into Badger, and the records after the
		// checkpoint (every key has some) add to it.
		other, err := persistence.OpenBadger(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		last := map[int64]int64{}
		runRestored(t, countJob(other, last, 2, nil, graph.Checkpoints(store, time.Hour)), n)
		exact("restored", last, n/keys)
	})
}

func runToEnd(t *testing.T, job *graph.Job) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
