package graph_test

import (
	"strings"
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

func TestBadgerStateRefusesCheckpoints(t *testing.T) {
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := graph.New("badger")
	graph.Count(graph.KeyBy(numbers(g, "src"), func(v int) int { return v % 3 })).To(stream.NewCollect[stream.KV[int, int64]]())
	_, err = g.Build(graph.BadgerState(db), graph.Checkpoints(store, time.Second), quiet)
	if err == nil || !strings.Contains(err.Error(), "not supported yet") {
		t.Fatalf("Build() = %v, want a refusal", err)
	}
}
