// Two nodes in one process need two Proto.Actor remotes: a data race inside the library
// under -race (see cluster_test.go).

//go:build !race

package actor_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/s3test"
	"github.com/eddyflow/eddy/stream"
)

// Two nodes, each with its own Badger state, checkpoint into one S3 bucket (SeaweedFS) that
// both reach: each node's key groups write their snapshots to the bucket themselves, the
// coordinator's manifests hold handles only (so what crosses the network per checkpoint is
// bytes, not the state), and the counts are exact.
func TestTwoNodesStreamSnapshotsToTheBucket(t *testing.T) {
	const n, keys = 200_000, 50_000
	srv := s3test.Start(t)
	store, err := persistence.NewBucketCheckpoints(srv.Bucket(t, "ckpt"), "two/", "s3://ckpt")
	if err != nil {
		t.Fatal(err)
	}
	a, b := startNode(t), startNode(t)
	nodes := [2]string{a.Address(), b.Address()}
	var mu sync.Mutex
	counts := map[int64]int64{}
	gate := &actortest.Gate{}
	nodeJob := func(sys *pa.ActorSystem, coordinator string, others []string) *graph.Job {
		db, err := persistence.OpenBadger(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		g := graph.New("two")
		src := graph.From(g, actortest.GatedSource(stream.Generate(n, func(i int64) int64 { return i }), n/4, gate), graph.Name("src"))
		src = graph.Map(src, func(i int64) int64 { return i % keys })
		graph.Count(graph.KeyBy(src, func(k int64) int64 { return k }), graph.Name("count")).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				counts[r.Value.Key] = max(counts[r.Value.Key], r.Value.Value)
			}
			return nil
		}))
		job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(8), graph.BadgerState(db), graph.Checkpoints(store, 20*time.Millisecond),
			graph.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))),
			func(c *actor.Config) {
				c.Placement = byParity{self: sys.Address(), nodes: nodes}
				c.Cluster = &actor.ClusterRun{System: sys, Epoch: 1, Coordinator: coordinator, Nodes: others}
			})
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	ja := nodeJob(a, "", []string{b.Address()})
	jb := nodeJob(b, a.Address(), []string{a.Address()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	for _, j := range []*graph.Job{ja, jb} {
		go func() { errs <- j.Run(ctx) }()
	}
	for ja.Checkpoints().Completed < 2 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	// Every key group of count, on both nodes, wrote its snapshot to the bucket itself.
	groups := map[string]bool{}
	err = store.ListObjects(ctx, "chk-", func(key string, size int64) error {
		if _, name, ok := strings.Cut(key, "/"); ok && strings.HasPrefix(name, "two~count~") && size > 0 {
			groups[strings.SplitN(name, ".", 2)[0]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 8 {
		t.Errorf("snapshot objects of %d key groups of count in the bucket (%v), want all 8 (4 per node)", len(groups), groups)
	}
	gate.Open()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(counts) != keys {
		t.Fatalf("%d keys counted, want %d", len(counts), keys)
	}
	for k, c := range counts {
		if c != n/keys {
			t.Fatalf("key %d counted %d, want %d", k, c, n/keys)
		}
	}
	// The manifests' state bytes (handles and sources' positions) stay small however large
	// the state is: 50,000 keys are several hundred KB of snapshot.
	if cs := ja.Checkpoints(); cs.Bytes > 16<<10 {
		t.Errorf("the last checkpoint carried %d bytes of state through the coordinator, want handles only", cs.Bytes)
	}
}
