package graph_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
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
		graph.Count(graph.KeyBy(src, func(k int64) int64 { return k })).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
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
			// The first run's sources stop a quarter of the way in until the savepoint is
			// taken, so that it is taken mid-run.
			gate := &actortest.Gate{}
			newJob := func(backend string, opts ...graph.JobOption) *graph.Job {
				g := graph.New("badger-sp")
				src := graph.From(g, actortest.GatedSource(stream.Generate(n, func(i int64) int64 { return i }), n/8, gate), graph.Name("src"))
				slow := graph.Map(src, func(i int64) int64 { return i % keys })
				graph.Count(graph.KeyBy(slow, func(k int64) int64 { return k })).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
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
			gate.Open()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			clear(last)
			runRestored(t, newJob(tc.to, graph.FromSavepoint(store, "mid")), n)
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

// keyOf spreads record i over 20,000 keys, a few of them hot: a checkpoint interval changes
// far fewer keys than the state holds.
func keyOf(i int64) int64 {
	if i%4 != 0 {
		return i % 50
	}
	return i % 20_000
}

// With checkpoints on the Badger backend, snapshots after the first are incremental (the
// writes since the last complete checkpoint); a job cut off mid-run and started again
// flattens the chains and ends with exact counts.
func TestBadgerStateIncrementalCheckpoints(t *testing.T) {
	const n = 400_000
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newJob := func(cut *cutPoint) *graph.Job {
		g := graph.New("incremental")
		src := graph.From(g, cut.source(n), graph.Name("src"))
		keys := graph.Map(src, keyOf)
		graph.Count(graph.KeyBy(keys, func(k int64) int64 { return k }), graph.Name("count"), cutByRecords).To(stream.FuncSink(func([]stream.Record[stream.KV[int64, int64]]) error { return nil }))
		return build(t, g, graph.Parallelism(2), graph.MaxKeyGroups(4), graph.BadgerState(db), graph.Checkpoints(store, 10*time.Millisecond))
	}
	cut := &cutPoint{a: n / 8, b: n / 4}
	cutOff(t, newJob(cut), 12, cut)
	// The newest checkpoint holds incremental snapshots of the key groups.
	l, err := persistence.LoadLatestValid(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := graph.DecodeCheckpoint(l.Data)
	if err != nil {
		t.Fatal(err)
	}
	deltas := 0
	for id, st := range raw.States {
		if strings.Contains(id, "/count") && graph.RunsChain(st) > 1 { // streamed to the store: base and changes
			deltas++
		}
	}
	if deltas == 0 {
		t.Fatalf("checkpoint %d holds no incremental snapshot", l.N)
	}
	second := runRestored(t, newJob(nil), n)
	// The state in Badger is the exact count of every key: not short of what the first run
	// counted before its checkpoint, not doubled by what it counted after.
	want := map[int64]int64{}
	for i := range int64(n) {
		want[keyOf(i)]++
	}
	got := map[int64]int64{}
	keyCodec, _ := stream.CodecFor[int64]()
	for _, st := range second.Stats() {
		if !strings.HasPrefix(st.Stage, "count") {
			continue
		}
		for kg := range st.Instances {
			kv, err := db.KeyedValues(fmt.Sprintf("incremental/%s/%d", st.Stage, kg))
			if err != nil {
				t.Fatal(err)
			}
			err = kv.Scan(func(kb, vb []byte) error {
				k, err := keyCodec.Decode(kb)
				if err != nil {
					return err
				}
				got[k], err = stream.DecodeState[int64](vb)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys in Badger, want %d", len(got), len(want))
	}
	for k, c := range want {
		if got[k] != c {
			t.Fatalf("key %d: %d in Badger, want %d", k, got[k], c)
		}
	}

}

// An upsert sink gets exactly-once results without transactions: a job cut off mid-run
// and started again from its checkpoint replays records, and the table ends with every
// key's exact count, as a run without the failure would leave it.
func TestUpsertSinkAcrossARestart(t *testing.T) {
	const n, keys = 300_000, 5_000
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := stream.CodecFor[int64]()
	table := persistence.NewUpsertTable(db, "counts", kc, kc)
	newJob := func(cut *cutPoint) *graph.Job {
		g := graph.New("upserts")
		src := graph.From(g, cut.source(n), graph.Name("src"))
		byKey := graph.Map(src, func(i int64) int64 { return i % keys })
		graph.Count(graph.KeyBy(byKey, func(k int64) int64 { return k }), graph.Name("count"), cutByRecords).To(stream.UpsertSink[int64, int64](table))
		return build(t, g, graph.Parallelism(2), graph.MaxKeyGroups(8), graph.Checkpoints(store, 10*time.Millisecond))
	}
	cut := &cutPoint{a: n / 8, b: n / 4}
	cutOff(t, newJob(cut), 5, cut) // the table now holds counts past the checkpoint
	runRestored(t, newJob(nil), n)
	rows := 0
	err = table.All(func(k, c int64) error {
		rows++
		if c != n/keys {
			return fmt.Errorf("key %d: %d in the table, want %d", k, c, n/keys)
		}
		return nil
	})
	if err != nil || rows != keys {
		t.Fatalf("%d rows, %v; want %d rows of %d", rows, err, keys, n/keys)
	}
}

// cutPoint says where cutOff cuts a run off: its source is Generate(n) whose splits stop
// after a records each until the run has completed its checkpoints, then go on to b records
// each (read past the last checkpoint), and stop there for good. A nil cutPoint is a plain
// Generate(n), for the run that restarts.
type cutPoint struct {
	a, b                  int64
	checkpointed, reached actortest.Gate
}

func (c *cutPoint) source(n int64) stream.Source[int64] {
	src := stream.Generate(n, func(i int64) int64 { return i })
	if c == nil {
		return src
	}
	return actortest.GatedSource(actortest.GatedSource(src, c.a, &c.checkpointed), c.b, &c.reached)
}

// cutByRecords is the option of the Count stage of a job that cutOff cuts: it waits until
// the stage has taken in a number of records, which with local aggregation (sending
// partial counts, see localagg_test.go for it across restores) it never would.
var cutByRecords = graph.LocalAggregation(false)

// cutOff runs job, built over cut.source, until it has completed the given number of
// checkpoints and its stage "count" has then taken in every record up to cut.b of each split,
// then cuts it off: a crash with state and output past its last checkpoint, on any machine.
func cutOff(t *testing.T, job *graph.Job, checkpoints int64, cut *cutPoint) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(runTimeout); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the run to cut off: no %s in %v", what, runTimeout)
			}
		}
	}
	wait(fmt.Sprintf("%d checkpoints", checkpoints), func() bool { return job.Checkpoints().Completed >= checkpoints })
	cut.checkpointed.Open()
	splits := int64(statsOf(t, job, "src").Instances)
	wait("records past the checkpoints", func() bool { return statsOf(t, job, "count").In >= cut.b*splits })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the run to cut off: %v", err)
	}
}

// runRestored runs job, started again after cutOff, to its end, and checks that it started
// from a checkpoint: its source "src" read some but not all of the n records.
func runRestored(t *testing.T, job *graph.Job, n int64) *graph.Job {
	t.Helper()
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if in := statsOf(t, job, "src").In; in == 0 || in >= n {
		t.Fatalf("the restarted job read %d records; want fewer than %d", in, n)
	}
	return job
}
