package cluster_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// One node runs a job to its end; Run returns nil. Then a node that leaves while its job
// runs hands off at a checkpoint, and Run says it left.
func TestNodeRun(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T) *cluster.Node {
		n, err := cluster.StartNode(context.Background(), cluster.NodeConfig{
			Membership: cluster.Config{NodeID: "solo", Profile: cluster.Loopback, Logger: quiet},
			Settle:     50 * time.Millisecond, FenceDir: t.TempDir(), Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var mu sync.Mutex
	counts := map[int64]int64{}
	// build's job reads n records; with a held gate its sources stop after 1,000 records
	// each, so that the job is still running whatever the test does next.
	build := func(n int64, held *actortest.Gate) func(func(*actor.Config)) (cluster.JobRun, error) {
		return func(option func(*actor.Config)) (cluster.JobRun, error) {
			g := graph.New("solo")
			var numbers stream.Source[int64] = stream.Generate(n, func(i int64) int64 { return i })
			if held != nil {
				numbers = actortest.GatedSource(numbers, 1000, held)
			}
			src := graph.Map(graph.From(g, numbers), func(i int64) int64 { return i % 10 })
			graph.Count(graph.KeyBy(src, func(k int64) int64 { return k })).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
				mu.Lock()
				defer mu.Unlock()
				for _, r := range recs {
					counts[r.Value.Key] = r.Value.Value
				}
				return nil
			}))
			return g.Build(graph.MaxKeyGroups(8), graph.Logger(quiet), graph.Checkpoints(store, 10*time.Millisecond), option)
		}
	}
	t.Run("to the end", func(t *testing.T) {
		n := start(t)
		defer n.Close()
		if err := n.Run(context.Background(), "solo", 8, build(10_000, nil)); err != nil {
			t.Fatal(err)
		}
		for k := range int64(10) {
			if counts[k] != 1000 {
				t.Errorf("key %d counted %d, want 1000", k, counts[k])
			}
		}
		if p := n.Placement(); p == nil || len(p.Table("solo", 8)["solo"]) != 8 {
			t.Errorf("placement %v: want all 8 key groups on the one node", p)
		}
	})
	t.Run("leave", func(t *testing.T) {
		store, err = persistence.OpenDirCheckpoints(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		n := start(t)
		defer n.Close()
		done := make(chan error, 1)
		go func() { done <- n.Run(context.Background(), "solo", 8, build(1_000_000, &actortest.Gate{})) }()
		for n.Placement() == nil || len(n.Stats()) == 0 || n.Stats()[0].In == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := n.Leave(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, cluster.ErrLeft) {
			t.Fatalf("Run after Leave = %v, want ErrLeft", err)
		}
		// The handoff was a complete checkpoint: the store has it.
		if ids, err := store.List(context.Background()); err != nil || len(ids) == 0 {
			t.Errorf("checkpoints after the handoff: %v, %v", ids, err)
		}
	})
}
