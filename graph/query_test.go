package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// latest is what a sink saw last per key: when it holds every final value, the state holds
// every record.
type latest[K comparable] struct {
	mu sync.Mutex
	m  map[K]int64
}

func (l *latest[K]) sink() stream.Sink[stream.KV[K, int64]] {
	return stream.FuncSink(func(recs []stream.Record[stream.KV[K, int64]]) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, r := range recs {
			l.m[r.Value.Key] = r.Value.Value
		}
		return nil
	})
}

// await waits until the sink has seen want, exactly.
func (l *latest[K]) await(t testing.TB, want map[K]int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		same := len(l.m) == len(want)
		for k, v := range want {
			same = same && l.m[k] == v
		}
		l.mu.Unlock()
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not reach its final values within a minute")
		}
	}
}

// runUntilCancelled builds g and runs it until the test ends.
func runUntilCancelled(t *testing.T, g *graph.Graph, opts ...graph.JobOption) (*graph.Job, context.Context) {
	t.Helper()
	job := build(t, g, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want cancelled", err)
		}
	})
	return job, ctx
}

// discard is a sink that keeps nothing.
func discard[T any]() stream.Sink[T] {
	return stream.FuncSink(func([]stream.Record[T]) error { return nil })
}

const queryUsers, queryRecords = 300, 3000

func user(i int64) string { return fmt.Sprintf("user-%03d", i%queryUsers) }

// queryJob runs, until the test ends, a job over purchases 0..2999 (purchase i by user
// i mod 300, at event time i seconds) with four keyed stages: "count" (purchases per user),
// "latest" (a table of each user's latest purchase), "mod7" (purchases per i mod 7, int64
// keys) and "windows" (per-minute counts). The source then waits at a gate.
func queryJob(t *testing.T) (*graph.Job, context.Context) {
	g := graph.New("queries")
	src := graph.From(g, actortest.GatedSource(stream.Generate(1<<40, func(i int64) int64 { return i }), queryRecords, &actortest.Gate{}), graph.Name("purchases"))
	timed := graph.Timestamps(src, func(i int64) int64 { return i * 1000 }, stream.Monotonous[int64](), graph.Name("timed"))
	counts := &latest[string]{m: map[string]int64{}}
	graph.Count(graph.KeyBy(timed, user), graph.Name("count")).To(counts.sink(), graph.Name("count-sink"))
	table := graph.ToTable(graph.Map(timed, func(i int64) stream.KV[string, int64] { return stream.KV[string, int64]{Key: user(i), Value: i} }), graph.Name("latest"))
	table.ToStream().To(discard[stream.KV[string, int64]](), graph.Name("latest-sink"))
	mod7 := &latest[int64]{m: map[int64]int64{}}
	graph.Count(graph.KeyBy(timed, func(i int64) int64 { return i % 7 }), graph.Name("mod7")).To(mod7.sink(), graph.Name("mod7-sink"))
	graph.Window(graph.KeyBy(timed, user), stream.Tumbling(time.Minute), agg.Count[int64](), graph.Name("windows")).
		To(discard[stream.WindowResult[string, int64]](), graph.Name("windows-sink"))
	job, ctx := runUntilCancelled(t, g, graph.Parallelism(1), graph.MaxKeyGroups(8))

	wantCounts, wantMod7 := map[string]int64{}, map[int64]int64{}
	for i := range int64(queryRecords) {
		wantCounts[user(i)]++
		wantMod7[i%7]++
	}
	counts.await(t, wantCounts)
	mod7.await(t, wantMod7)
	return job, ctx
}

// usersFrom returns user-from … user-(to-1).
func usersFrom(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("user-%03d", i))
	}
	return out
}

func TestQuery(t *testing.T) {
	job, ctx := queryJob(t)

	// A point query, by typed key and by text, with what it reflects: the watermark of
	// the last purchase (monotonous timestamps), no checkpoint (the job takes none).
	var r graph.QueryResult
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var err error
		if r, err = job.Query(ctx, "count", "user-007"); err != nil {
			t.Fatal(err)
		}
		if r.HasWatermark && r.Watermark == (queryRecords-1)*1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watermark of user-007's key group is %d (%v), want %d", r.Watermark, r.HasWatermark, (queryRecords-1)*1000)
		}
	}
	var n int64
	if err := r.Decode(&n); err != nil || n != queryRecords/queryUsers || string(r.Key) != `"user-007"` || r.Stage != "count" || r.Checkpoint != 0 {
		t.Errorf("count of user-007: %+v (%d, %v), want %d", r, n, err, queryRecords/queryUsers)
	}
	// The table's row is the user's latest purchase; the int64 key reads typed or as text.
	if r, err := job.Query(ctx, "latest", "user-042"); err != nil || string(r.Value) != `{"row":2742}` {
		t.Errorf("latest of user-042: %s, %v; want row 2742", r.Value, err)
	}
	for _, key := range []any{int64(3), "3"} {
		if r, err := job.Query(ctx, "mod7", key); err != nil || string(r.Value) != "429" || string(r.Key) != "3" {
			t.Errorf("mod7 of %#v: %s = %s, %v; want 3 = 429", key, r.Key, r.Value, err)
		}
	}

	for _, tc := range []struct {
		name  string
		stage string
		scan  graph.Scan
		keys  []string
		more  bool
	}{
		{"prefix", "count", graph.Scan{Prefix: "user-01"}, usersFrom(10, 20), false},
		{"range", "count", graph.Scan{From: "user-100", To: "user-105"}, usersFrom(100, 105), false},
		{"limit", "count", graph.Scan{Limit: 3}, usersFrom(0, 3), true},
		{"prefix and from", "count", graph.Scan{Prefix: "user-2", From: "user-250", Limit: 100}, usersFrom(250, 300), false},
		{"to before from", "count", graph.Scan{From: "user-200", To: "user-100"}, nil, false},
		{"no such prefix", "count", graph.Scan{Prefix: "zzz"}, nil, false},
		{"everything", "count", graph.Scan{Limit: graph.MaxScanLimit}, usersFrom(0, queryUsers), false},
		{"table", "latest", graph.Scan{Prefix: "user-29"}, usersFrom(290, 300), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := job.Scan(ctx, tc.stage, tc.scan)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range s.Entries {
				var k string
				if err := json.Unmarshal(e.Key, &k); err != nil || string(e.KeyBytes) != k {
					t.Fatalf("entry key %s, bytes %q: %v", e.Key, e.KeyBytes, err)
				}
				keys = append(keys, k)
				want := fmt.Sprint(queryRecords / queryUsers)
				if tc.stage == "latest" {
					var i int
					fmt.Sscanf(k, "user-%d", &i)
					want = fmt.Sprintf(`{"row":%d}`, queryRecords-queryUsers+i)
				}
				if string(e.Value) != want {
					t.Errorf("%s: %s, want %s", k, e.Value, want)
				}
			}
			if !slices.Equal(keys, tc.keys) || s.More != tc.more {
				t.Errorf("keys %v (more %v), want %v (more %v)", keys, s.More, tc.keys, tc.more)
			}
			if !slices.Equal(s.KeyGroups, ints(8)) || !s.HasWatermark || s.Stage != tc.stage {
				t.Errorf("read key groups %v, watermark %v; want all 8, with a watermark", s.KeyGroups, s.HasWatermark)
			}
		})
	}
}

// Bad questions get errors that say what is wrong, never a panic or a wrong answer.
func TestQueryErrors(t *testing.T) {
	job, ctx := queryJob(t)
	for _, tc := range []struct {
		name  string
		stage string
		key   any
		scan  *graph.Scan
		want  error
	}{
		{"unknown stage", "nope", "user-001", nil, graph.ErrUnknownStage},
		{"source", "purchases", "1", nil, graph.ErrNotKeyed},
		{"stateless stage", "timed", "1", nil, graph.ErrNotKeyed},
		{"sink", "count-sink", "1", nil, graph.ErrNotKeyed},
		{"no state for the key", "count", "nobody", nil, graph.ErrNoState},
		{"int for a string key", "count", 7, nil, graph.ErrBadKey},
		{"text that is no int64", "mod7", "seven", nil, graph.ErrBadKey},
		{"int for an int64 key", "mod7", 3, nil, graph.ErrBadKey},
		{"nil key", "count", nil, nil, graph.ErrBadKey},
		{"scan a window stage", "windows", nil, &graph.Scan{}, graph.ErrNotScannable},
		{"scan an unknown stage", "nope", nil, &graph.Scan{}, graph.ErrUnknownStage},
		{"scan a source", "purchases", nil, &graph.Scan{}, graph.ErrNotKeyed},
		{"negative limit", "count", nil, &graph.Scan{Limit: -1}, graph.ErrBadScan},
		{"limit above the most", "count", nil, &graph.Scan{Limit: graph.MaxScanLimit + 1}, graph.ErrBadScan},
		{"bad from", "mod7", nil, &graph.Scan{From: "x"}, graph.ErrBadKey},
		{"bad to", "count", nil, &graph.Scan{To: 1.5}, graph.ErrBadKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.scan != nil {
				_, err = job.Scan(ctx, tc.stage, *tc.scan)
			} else {
				_, err = job.Query(ctx, tc.stage, tc.key)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	// A query after the run fails, and says so.
	g := graph.New("over")
	graph.Count(graph.KeyBy(graph.From(g, stream.Generate(10, func(i int64) int64 { return i })), func(i int64) int64 { return i }), graph.Name("c")).
		To(discard[stream.KV[int64, int64]]())
	over := run(t, g)
	if _, err := over.Query(context.Background(), "c", int64(1)); err == nil {
		t.Error("a query of a job that ended answered")
	}
}

// With the Badger state backend, a key group keeps few keys in memory: a point query reads
// the others from Badger, and scans seek to their range there, in key order, with what the
// last batches changed laid over it.
func TestQueryBadger(t *testing.T) {
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() }) // after the job's cleanup, which stops it
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const keys, records = 12_000, 30_000 // 6,000 keys per key group: more than it caches
	key := func(i int64) string { return fmt.Sprintf("k%05d", (i*7919)%keys) }
	want := map[string]int64{}
	for i := range int64(records) {
		want[key(i)]++
	}
	g := graph.New("badger-queries")
	src := graph.From(g, actortest.GatedSource(stream.Generate(1<<40, func(i int64) int64 { return i }), records, &actortest.Gate{}))
	counts := &latest[string]{m: map[string]int64{}}
	graph.Count(graph.KeyBy(src, key), graph.Name("count")).To(counts.sink())
	job, ctx := runUntilCancelled(t, g, graph.Parallelism(1), graph.MaxKeyGroups(2), graph.BadgerState(db),
		graph.Checkpoints(store, 10*time.Millisecond))
	counts.await(t, want)
	newest := func() uint64 {
		ids, err := store.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Max(append(ids, 0))
	}
	for after, deadline := newest(), time.Now().Add(time.Minute); newest() < after+2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no two checkpoints completed after the input")
		}
	}

	for k, n := range want {
		r, err := job.Query(ctx, "count", k)
		var got int64
		if err != nil || r.Decode(&got) != nil || got != n || r.Checkpoint < 1 {
			t.Fatalf("key %s: %s at checkpoint %d, %v; want %d after a checkpoint", k, r.Value, r.Checkpoint, err, n)
		}
	}
	sorted := make([]string, 0, len(want))
	for k := range want {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, tc := range []struct {
		name string
		scan graph.Scan
		keys []string
		more bool
	}{
		{"range", graph.Scan{From: "k01000", To: "k01100", Limit: 1000}, sorted[1000:1100], false},
		{"prefix", graph.Scan{Prefix: "k099"}, sorted[9900:10000], false},
		{"limit", graph.Scan{From: "k05000", Limit: 10}, sorted[5000:5010], true},
		{"the last", graph.Scan{From: "k11995"}, sorted[11995:], false},
		{"all", graph.Scan{Limit: graph.MaxScanLimit}, sorted[:graph.MaxScanLimit], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := job.Scan(ctx, "count", tc.scan)
			if err != nil {
				t.Fatal(err)
			}
			keys := make([]string, len(s.Entries))
			for i, e := range s.Entries {
				var n int64
				if json.Unmarshal(e.Key, &keys[i]) != nil || json.Unmarshal(e.Value, &n) != nil || n != want[keys[i]] {
					t.Errorf("entry %s = %s, want %d", e.Key, e.Value, want[keys[i]])
				}
			}
			if !slices.Equal(keys, tc.keys) || s.More != tc.more {
				t.Errorf("%d keys %v… (more %v), want %d from %s (more %v)", len(keys), keys[:min(3, len(keys))], s.More, len(tc.keys), tc.keys[0], tc.more)
			}
		})
	}
}
