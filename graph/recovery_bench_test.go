package graph_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// BenchmarkRecovery1MKeys measures recovery of a counting job's state of 1,000,000 keys:
// reading the newest checkpoint from the store, decoding it, and loading every key group
// into the state backend (Build, then Run until the restored job has its state and sees its
// input is done).
//
//	go test ./graph -run '^$' -bench Recovery -benchtime 3x
func BenchmarkRecovery1MKeys(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchmarkRecovery(b, nil) })
	b.Run("badger", func(b *testing.B) {
		db, err := persistence.OpenBadger(b.TempDir(), persistence.WithSync(persistence.SyncNever))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchmarkRecovery(b, db)
	})
}

func benchmarkRecovery(b *testing.B, db *persistence.BadgerDB) {
	const keys = 1_000_000
	store, err := persistence.OpenDirCheckpoints(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	job := func(store persistence.CheckpointStore, n int64) *graph.Job {
		g := graph.New("recovery")
		src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i % keys }), graph.Name("src"))
		graph.Count(graph.KeyBy(src, func(k int64) int64 { return k })).
			To(stream.FuncSink(func([]stream.Record[stream.KV[int64, int64]]) error { return nil }))
		opts := []graph.JobOption{graph.Parallelism(1), graph.Checkpoints(store, time.Hour), quiet}
		if db != nil {
			opts = append(opts, graph.BadgerState(db))
		}
		j, err := g.Build(opts...)
		if err != nil {
			b.Fatal(err)
		}
		return j
	}
	// One run over every key leaves the final checkpoint, with all the state, in the store.
	ctx := context.Background()
	if err := job(store, keys).Run(ctx); err != nil {
		b.Fatal(err)
	}
	// Make it an ordinary checkpoint in another store, so that a run restores it (a run
	// that finds a final checkpoint has nothing to do).
	l, err := persistence.LoadLatestValid(ctx, store)
	if err != nil {
		b.Fatal(err)
	}
	cp, err := graph.DecodeCheckpoint(l.Data)
	if err != nil {
		b.Fatal(err)
	}
	cp.ID, cp.Finished = 1, nil
	data := graph.EncodeCheckpoint(cp)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		mid, err := persistence.OpenDirCheckpoints(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if err := mid.Write(ctx, 1, data); err != nil {
			b.Fatal(err)
		}
		copyRuns(b, store, mid, cp)
		b.StartTimer()
		// Build reads and decodes the checkpoint; Run loads the key groups' state (clearing
		// what Badger held first) and finds the input at its end.
		start := time.Now()
		j := job(mid, keys)
		if err := j.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/recovery")
	}
}

// copyRuns copies the snapshot runs cp refers to from one store to another.
func copyRuns(b *testing.B, from, to *persistence.DirCheckpoints, cp actor.Checkpoint) {
	ctx := context.Background()
	for _, st := range cp.States {
		for _, h := range graph.RunHandles(st) {
			r, err := from.OpenObject(ctx, h.Key)
			if err != nil {
				b.Fatal(err)
			}
			w, err := to.CreateObject(ctx, h.Key)
			if err == nil {
				_, err = io.Copy(w, r)
			}
			r.Close()
			if err == nil {
				err = w.Commit()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
