package graph_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/s3test"
	"github.com/eddyflow/eddy/stream"
)

var (
	snapshotKeys       = flag.Int64("snapshot-keys", 2_000_000, "distinct keys of BenchmarkStreamedCheckpoint's state")
	snapshotMemprofile = flag.String("snapshot-memprofile", "", "write heap profiles of BenchmarkStreamedCheckpoint to PREFIX-before.pprof (the state loaded, before the checkpoint) and PREFIX-recovered.pprof (as of the last collection of the recovery)")
)

// BenchmarkStreamedCheckpoint measures a checkpoint and a recovery of a large state on
// Badger (snapshot-keys distinct keys, each with a 100-byte value, the latest per key, as
// examples/bench's large-state) through a checkpoint store that keeps snapshot objects: a
// local directory, and a real S3 server (SeaweedFS). Once the job holds every key, a
// savepoint takes a checkpoint (each key group streams its full snapshot to the store) and
// merges it into the savepoint's own objects; then a new job on an empty Badger restores
// the savepoint. It reports the state's size in the store, the checkpoint's and the
// savepoint's seconds and the peak heap during them (heap objects, garbage included, as
// examples/bench samples it; and the live heap found by each collection), and the
// recovery's seconds and peak heap (from Build until the restored job emits). As
// examples/bench's large-state, it runs with a soft memory limit of 384 MiB.
//
//	EDDY_WEED_VOLUME_MB=512 go test ./graph -run '^$' -bench StreamedCheckpoint -benchtime 1x -timeout 60m -args -snapshot-keys=2000000
func BenchmarkStreamedCheckpoint(b *testing.B) {
	b.Run("dir", func(b *testing.B) {
		store, err := persistence.OpenDirCheckpoints(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		benchmarkStreamedCheckpoint(b, store)
	})
	b.Run("s3", func(b *testing.B) {
		srv := s3test.Start(b)
		store, err := persistence.NewBucketCheckpoints(srv.Bucket(b, "ckpt"), "bench/", "s3://ckpt")
		if err != nil {
			b.Fatal(err)
		}
		benchmarkStreamedCheckpoint(b, store)
	})
}

type latestValue struct{}

func (latestValue) Zero() string                                      { return "" }
func (latestValue) Add(_ string, kv stream.KV[uint64, string]) string { return kv.Value }
func (latestValue) Result(acc string) string                          { return acc }

func openBenchBadger(b *testing.B) *persistence.BadgerDB {
	// The options of examples/bench's large-state: small caches, the state on disk.
	db, err := persistence.OpenBadger(b.TempDir(), persistence.WithSync(persistence.SyncNever),
		persistence.WithBadgerOptions(func(o badger.Options) badger.Options {
			return o.WithMemTableSize(8 << 20).WithNumMemtables(2).WithBlockCacheSize(16 << 20).
				WithIndexCacheSize(16 << 20).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4).
				WithNumCompactors(2).WithBaseTableSize(1 << 20).WithBaseLevelSize(8 << 20).
				WithCompression(options.None)
		}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() }) // a second Close is harmless
	return db
}

func benchmarkStreamedCheckpoint(b *testing.B, store persistence.CheckpointStore) {
	n := *snapshotKeys
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(384 << 20))
	value := strings.Repeat("v", 100)
	var gate actortest.Gate
	newJob := func(db *persistence.BadgerDB, src stream.Source[stream.KV[uint64, string]], more ...graph.JobOption) *graph.Job {
		g := graph.New("large")
		s := graph.From(g, src, graph.Name("src"))
		perKey := graph.KeyBy(s, func(kv stream.KV[uint64, string]) uint64 { return kv.Key }, graph.WithCodec(stream.JSON[stream.KV[uint64, string]]()))
		graph.Aggregate(perKey, latestValue{}, graph.Name("latest")).
			To(stream.FuncSink(func([]stream.Record[stream.KV[uint64, string]]) error { return nil }))
		opts := append([]graph.JobOption{graph.Parallelism(2), graph.MaxKeyGroups(16), graph.BadgerState(db), quiet}, more...)
		j, err := g.Build(opts...)
		if err != nil {
			b.Fatal(err)
		}
		return j
	}
	gen := stream.Generate(n+1, func(i int64) stream.KV[uint64, string] {
		return stream.KV[uint64, string]{Key: uint64(i), Value: value}
	})
	ctx := context.Background()
	for i := range b.N {
		name := fmt.Sprintf("sp-%d", i)
		b.StopTimer()
		// The state: every key once; the split then waits at the gate (half of them each).
		db := openBenchBadger(b)
		job := newJob(db, actortest.GatedSource(gen, n/2, &gate), graph.Checkpoints(store, time.Hour))
		done := make(chan error, 1)
		go func() { done <- job.Run(ctx) }()
		start := time.Now()
		for job.Stats()[1].In < n {
			time.Sleep(50 * time.Millisecond)
			if time.Since(start) > 50*time.Minute {
				b.Fatalf("the job took in %d of %d keys in 50 minutes", job.Stats()[1].In, n)
			}
		}
		b.Logf("%d keys in Badger in %v", n, time.Since(start).Round(time.Millisecond))
		runtime.GC()
		before := liveHeap()
		if *snapshotMemprofile != "" {
			writeHeapProfile(b, *snapshotMemprofile+"-before.pprof")
		}
		b.StartTimer()
		stop := watchLiveHeap()
		t0 := time.Now()
		if err := job.Savepoint(ctx, name); err != nil {
			b.Fatal(err)
		}
		savepointSecs := time.Since(t0).Seconds()
		peak, peakLive := stop()
		b.StopTimer()
		cps := job.Checkpoints()
		gate.Open()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		stateBytes := savepointBytes(b, store, name)
		job = nil
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}

		// Recovery: a new job on an empty Badger restores the savepoint.
		db2 := openBenchBadger(b)
		runtime.GC()
		recoveryBefore := liveHeap()
		stop = watchLiveHeap()
		t0 = time.Now()
		restored := newJob(db2, gen, graph.FromSavepoint(store, name))
		done = make(chan error, 1)
		go func() { done <- restored.Run(ctx) }()
		for restored.Stats()[0].Out == 0 {
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
				done <- nil
			default:
			}
			time.Sleep(time.Millisecond)
		}
		recoverySecs := time.Since(t0).Seconds()
		recoveryPeak, recoveryLive := stop()
		if *snapshotMemprofile != "" {
			writeHeapProfile(b, *snapshotMemprofile+"-recovered.pprof")
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(stateBytes)/(1<<20), "state-MiB")
		b.ReportMetric(cps.Duration.Seconds(), "checkpoint-s")
		b.ReportMetric(savepointSecs, "savepoint-s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(peakLive)/(1<<20), "peak-live-MiB")
		b.ReportMetric(float64(recoveryLive)/(1<<20), "recovery-peak-live-MiB")
		b.ReportMetric(float64(before)/(1<<20), "heap-before-MiB")
		b.ReportMetric(recoverySecs, "recovery-s")
		b.ReportMetric(float64(recoveryPeak)/(1<<20), "recovery-peak-heap-MiB")
		b.ReportMetric(float64(recoveryBefore)/(1<<20), "recovery-heap-before-MiB")
		if err := store.DeleteSavepoint(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
}

// savepointBytes sums the sizes of the runs savepoint name refers to.
func savepointBytes(b *testing.B, store persistence.CheckpointStore, name string) int64 {
	data, err := store.LoadSavepoint(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}
	cp, err := graph.DecodeCheckpoint(data)
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, st := range cp.States {
		for _, h := range graph.RunHandles(st) {
			size += h.Size
		}
	}
	if size == 0 {
		b.Fatal("the savepoint refers to no snapshot runs")
	}
	return size
}

// liveAfterGC is the heap the last collection found live: what is retained, without the
// garbage that liveHeap counts until the next collection.
func liveAfterGC() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// watchLiveHeap samples the heap's objects (live and not yet collected, as examples/bench
// does) every millisecond until the returned function is called, which returns the peak.
func watchLiveHeap() func() (uint64, uint64) {
	var peak, peakLive atomic.Uint64
	peak.Store(liveHeap())
	peakLive.Store(liveAfterGC())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := liveHeap(); v > peak.Load() {
					peak.Store(v)
				}
				if v := liveAfterGC(); v > peakLive.Load() {
					peakLive.Store(v)
				}
			}
		}
	})
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		return peak.Load(), peakLive.Load()
	}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
