package graph_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/s3test"
	"github.com/eddyflow/eddy/stream"
)

// streamStore is a checkpoint store that keeps snapshot objects.
type streamStore interface {
	persistence.CheckpointStore
	persistence.SnapshotObjects
}

// streamedCountJob counts keyOf(i) for n records on the Badger backend with checkpoints
// into store every 10ms; the test reads the counts back from db (badgerCounts).
// The count stage takes records one by one (no local aggregation): cutOff counts the
// records it has taken.
func streamedCountJob(t *testing.T, db *persistence.BadgerDB, store persistence.CheckpointStore, n int64, cut *cutPoint, more ...graph.JobOption) *graph.Job {
	g := graph.New("streamed")
	src := graph.From(g, cut.source(n), graph.Name("src"))
	keys := graph.Map(src, keyOf)
	graph.Count(graph.KeyBy(keys, func(k int64) int64 { return k }), graph.Name("count"), graph.LocalAggregation(false)).To(stream.FuncSink(func([]stream.Record[stream.KV[int64, int64]]) error { return nil }))
	opts := append([]graph.JobOption{graph.Parallelism(2), graph.MaxKeyGroups(4), graph.BadgerState(db), graph.Checkpoints(store, 10*time.Millisecond)}, more...)
	return build(t, g, opts...)
}

// wantExactCounts checks that job's count stage holds in db the exact count of every key of
// n records.
func wantExactCounts(t *testing.T, db *persistence.BadgerDB, job *graph.Job, n int64) {
	t.Helper()
	want := map[int64]int64{}
	for i := range n {
		want[keyOf(i)]++
	}
	got := map[int64]int64{}
	keyCodec, _ := stream.CodecFor[int64]()
	for _, st := range job.Stats() {
		if !strings.HasPrefix(st.Stage, "count") {
			continue
		}
		for kg := range st.Instances {
			kv, err := db.KeyedValues(fmt.Sprintf("streamed/%s/%d", st.Stage, kg))
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

// manifestRuns returns, per checkpoint in store, the snapshot runs its manifest refers to
// (the key groups of "count", whose state is in Badger), by key.
func manifestRuns(t *testing.T, store streamStore) map[uint64][]persistence.RunHandle {
	t.Helper()
	ctx := context.Background()
	ids, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]persistence.RunHandle{}
	for _, id := range ids {
		b, err := store.Load(ctx, id)
		if errors.Is(err, persistence.ErrNotFound) {
			// Listed, then gone: pruned by the run's last save. Seen once against SeaweedFS,
			// whose listing may still show a key just deleted; a checkpoint that is gone
			// refers to nothing.
			t.Logf("checkpoint %d was listed but is gone: %v", id, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		cp, err := graph.DecodeCheckpoint(b)
		if err != nil {
			t.Fatal(err)
		}
		for identity, st := range cp.States {
			if !strings.Contains(identity, "/count") {
				continue
			}
			chain := graph.RunHandles(st)
			if len(chain) == 0 {
				t.Fatalf("checkpoint %d: %s's snapshot is inline (%d bytes), not in the store's objects", id, identity, len(st))
			}
			out[id] = append(out[id], chain...)
		}
	}
	return out
}

// wantNoStrayObjects checks retention: every checkpoint's run is in the store, and every
// checkpoint object in the store is a run some manifest refers to.
func wantNoStrayObjects(t *testing.T, store streamStore) {
	t.Helper()
	referenced := map[string]bool{}
	for _, runs := range manifestRuns(t, store) {
		for _, h := range runs {
			referenced[h.Key] = true
		}
	}
	var stray []string
	listed := map[string]bool{}
	err := store.ListObjects(context.Background(), "chk-", func(key string, _ int64) error {
		listed[key] = true
		if !referenced[key] {
			stray = append(stray, key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(stray) > 0 {
		t.Errorf("%d snapshot objects no checkpoint refers to, e.g. %s", len(stray), stray[0])
	}
	for k := range referenced {
		if !listed[k] {
			t.Errorf("run %s of a checkpoint is not in the store", k)
		}
	}
}

// A job on Badger with checkpoints into a store that keeps objects streams each key
// group's snapshot there (incremental after the first: the chain grows), a run cut off and
// started again merges the chains back into exact counts, and retention leaves no object
// that no checkpoint refers to.
func TestStreamedSnapshotsRestoreExactly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) streamStore
	}{
		{"dir", func(t *testing.T) streamStore {
			s, err := persistence.OpenDirCheckpoints(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"s3", func(t *testing.T) streamStore {
			srv := s3test.Start(t)
			s, err := persistence.NewBucketCheckpoints(srv.Bucket(t, "ckpt"), "jobs/streamed/", "s3://ckpt")
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 300_000
			db, err := persistence.OpenBadger(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			store := tc.store(t)
			cut := &cutPoint{a: n / 8, b: n / 4}
			cutOff(t, streamedCountJob(t, db, store, n, cut), 8, cut)
			longest := 0
			for _, runs := range manifestRuns(t, store) {
				longest = max(longest, len(runs))
			}
			if longest <= 4 { // 4 key groups: a chain longer than 1 somewhere
				t.Errorf("no checkpoint holds an incremental chain (longest %d runs for 4 key groups)", longest)
			}
			second := runRestored(t, streamedCountJob(t, db, store, n, nil), n)
			wantExactCounts(t, db, second, n)
			wantNoStrayObjects(t, store)
		})
	}
}

// A run of the newest checkpoint that is damaged, cut short or gone is reported with what
// and where, and the job restores the checkpoint before it, exactly.
func TestDamagedSnapshotRunFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		want   string
	}{
		{"truncated", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		}, "bytes with CRC-32C"},
		{"flipped byte", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x01
			return os.WriteFile(p, b, 0o644)
		}, "bytes with CRC-32C"},
		{"deleted", os.Remove, "missing from the store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200_000
			db, err := persistence.OpenBadger(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			dir := t.TempDir()
			store, err := persistence.OpenDirCheckpoints(dir)
			if err != nil {
				t.Fatal(err)
			}
			cut := &cutPoint{a: n / 8, b: n / 4}
			cutOff(t, streamedCountJob(t, db, store, n, cut), 4, cut)
			runs := manifestRuns(t, store)
			var newest uint64
			for id := range runs {
				newest = max(newest, id)
			}
			// A run written for the newest checkpoint: no older one refers to it.
			var victim string
			for _, h := range runs[newest] {
				if c, _ := persistence.ObjectCheckpoint(h.Key); c == newest {
					victim = h.Key
					break
				}
			}
			if victim == "" {
				t.Fatalf("checkpoint %d wrote no run of its own", newest)
			}
			if err := tc.damage(filepath.Join(dir, "objects", filepath.FromSlash(victim))); err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			second := streamedCountJob(t, db, store, n, nil, graph.Logger(logger))
			if err := second.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			if !strings.Contains(out, "corrupt checkpoint skipped") || !strings.Contains(out, victim) || !strings.Contains(out, tc.want) {
				t.Fatalf("the log does not report the damaged run %s (%q):\n%s", victim, tc.want, out)
			}
			if !strings.Contains(out, fmt.Sprintf("checkpoint %d", newest)) {
				t.Errorf("the log does not name checkpoint %d:\n%s", newest, out)
			}
			if strings.Contains(out, fmt.Sprintf(`msg="restoring from checkpoint" id=%d`, newest)) || !strings.Contains(out, `msg="restoring from checkpoint"`) {
				t.Errorf("restored from the damaged checkpoint %d:\n%s", newest, out)
			}
			wantExactCounts(t, db, second, n)
		})
	}
}

// syncBuffer is a bytes.Buffer for a logger that many goroutines use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A snapshot larger than a manifest holds inline (here: counts of 100,000 keys in memory,
// in two key groups) goes to the store's objects as well, and the manifest carries a
// handle; a run cut off and started again restores it, exactly.
func TestLargeInlineSnapshotsMoveToObjects(t *testing.T) {
	const n, keys = 300_000, 100_000
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[int64]int64{}
	newJob := func(cut *cutPoint) *graph.Job {
		g := graph.New("offload")
		src := graph.From(g, cut.source(n), graph.Name("src"))
		byKey := graph.Map(src, func(i int64) int64 { return i % keys })
		graph.Count(graph.KeyBy(byKey, func(k int64) int64 { return k }), graph.Name("count"), graph.LocalAggregation(false)).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				counts[r.Value.Key] = max(counts[r.Value.Key], r.Value.Value)
			}
			return nil
		}))
		return build(t, g, graph.Parallelism(2), graph.MaxKeyGroups(2), graph.Checkpoints(store, 10*time.Millisecond))
	}
	cut := &cutPoint{a: n / 4, b: n / 3}
	cutOff(t, newJob(cut), 3, cut)
	ids, err := store.List(context.Background())
	if err != nil || len(ids) == 0 {
		t.Fatalf("checkpoints: %v, %v", ids, err)
	}
	b, err := store.Load(context.Background(), ids[len(ids)-1])
	if err != nil {
		t.Fatal(err)
	}
	cp, err := graph.DecodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	for identity, st := range cp.States {
		if strings.Contains(identity, "/count") && len(st) > 64<<10 {
			t.Errorf("checkpoint %d: %s's snapshot is inline, %d bytes", cp.ID, identity, len(st))
		}
	}
	offloaded := 0
	err = store.ListObjects(context.Background(), "chk-", func(key string, size int64) error {
		if strings.Contains(key, "offload~count~") && size > 256<<10 {
			offloaded++
		}
		return nil
	})
	if err != nil || offloaded == 0 {
		t.Fatalf("no key group's snapshot in the store's objects (%v)", err)
	}
	runRestored(t, newJob(nil), n)
	if len(counts) != keys {
		t.Fatalf("%d keys counted, want %d", len(counts), keys)
	}
	for k, c := range counts {
		if c != n/keys {
			t.Fatalf("key %d counted %d, want %d", k, c, n/keys)
		}
	}
}
