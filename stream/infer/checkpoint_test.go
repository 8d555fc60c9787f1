package infer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
)

// A job cut off mid-run and started again from its last checkpoint, with a replayable source
// and a two-phase sink, commits every record's score exactly once: the stage has nothing in
// flight at a barrier, so no record is lost behind one or scored on both sides of it.
func TestStageExactlyOnceAcrossARestart(t *testing.T) {
	const n = 60_000
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	var scored atomic.Int64
	slow := infer.Func(func(ctx context.Context, rows [][]float32) ([][]float32, error) {
		scored.Add(int64(len(rows)))
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return infer.RowFunc(affine).Infer(ctx, rows)
	})
	newJob := func() (*graph.Graph, []graph.JobOption) {
		g := graph.New("exactly-once")
		sink, err := stream.TwoPhaseJSONLSink[infer.Scored[point]](outDir)
		if err != nil {
			t.Fatal(err)
		}
		infer.Stage(graph.From(g, points(n), graph.Name("src")), slow, features, infer.MaxBatch(64), infer.Concurrency(2)).To(sink)
		return g, []graph.JobOption{quiet, graph.Parallelism(2), graph.BatchSize(256), graph.Checkpoints(store, 20*time.Millisecond)}
	}

	// The first run: cut off once a few checkpoints are complete, mid-stream.
	g, opts := newJob()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, opts...) }()
	for {
		ids, err := store.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) >= 3 && scored.Load() > n/4 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the first run ended before it was cut off: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the run cut off: %v", err)
	}
	first := scored.Load()
	if first >= n {
		t.Fatalf("the first run scored all %d records before it was cut off", first)
	}

	// The second run starts from the last complete checkpoint and goes to the end.
	g, opts = newJob()
	if err := g.Run(context.Background(), opts...); err != nil {
		t.Fatal(err)
	}
	second := scored.Load() - first
	if second >= n {
		t.Errorf("the second run scored %d records: it started over rather than from the checkpoint", second)
	}

	// The committed output: every id once.
	seen := make([]int, n)
	files, err := filepath.Glob(filepath.Join(outDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var s infer.Scored[point]
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			seen[s.In.ID]++
		}
		f.Close()
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("id %d committed %d times, want once (%d scored in the first run, %d in the second)", id, c, first, second)
		}
	}
	t.Logf("scored %d before the cut, %d after; %d rescored behind the checkpoint", first, second, first+second-n)
}
