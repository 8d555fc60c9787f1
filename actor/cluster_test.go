// Two nodes in one process need two Proto.Actor remotes, and remote.Start sets grpc's
// global logger every time while the first one's server reads it: a data race inside the
// library, not Eddy's. Under -race the nodes run as processes instead (the cluster tests).

//go:build !race

package actor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// startNode starts an actor system with Proto.Actor remote on a free loopback port.
func startNode(t *testing.T) *pa.ActorSystem {
	t.Helper()
	tr, err := cluster.StartTransport("127.0.0.1:0", nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	return tr.System
}

// byParity places even key groups and splits on one node, odd ones on the other.
type byParity struct {
	self  string
	nodes [2]string
}

func (p byParity) Node(id actor.Identity) string {
	if n := p.nodes[id.Index%2]; n != p.self {
		return n
	}
	return ""
}

// A keyed count whose key groups and source splits are spread over two nodes (two actor
// systems talking over Proto.Actor remote on loopback) counts exactly what one node counts,
// with checkpoints coordinated by one of them across both.
func TestTwoNodes(t *testing.T) {
	const n, keys = 200_000, 1000
	a, b := startNode(t), startNode(t)
	nodes := [2]string{a.Address(), b.Address()}
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[int64]int64{}
	// The sources stop an eighth of the way in until two checkpoints across both nodes are
	// complete: checkpoints mid-run, however fast the machine.
	gate := &actortest.Gate{}
	nodeJob := func(sys *pa.ActorSystem, coordinator string, others []string) *graph.Job {
		g := graph.New("two")
		src := graph.From(g, actortest.GatedSource(stream.Generate(n, func(i int64) int64 { return i }), n/8, gate), graph.Name("src"))
		src = graph.Map(src, func(i int64) int64 { return i % keys })
		graph.Count(graph.KeyBy(src, func(k int64) int64 { return k })).To(stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				counts[r.Value.Key] = max(counts[r.Value.Key], r.Value.Value)
			}
			return nil
		}))
		job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(8), graph.Checkpoints(store, 20*time.Millisecond),
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	for _, j := range []*graph.Job{ja, jb} {
		go func() { errs <- j.Run(ctx) }()
	}
	for ja.Checkpoints().Completed < 2 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
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
	// Each node ran half of the instances; the coordinator's checkpoints covered both.
	for _, j := range []*graph.Job{ja, jb} {
		for _, st := range j.Stats() {
			if st.In == 0 {
				t.Errorf("stage %s ran nothing on one node: %+v", st.Stage, st)
			}
		}
	}
	if cs := ja.Checkpoints(); cs.Completed < 3 {
		t.Errorf("the coordinator completed %d checkpoints, want two mid-run and the final one", cs.Completed)
	}
}

// Nodes that disagree on the run (here: its epoch) never meet; their runs fail after the
// start timeout instead of waiting forever.
func TestTwoNodesDisagree(t *testing.T) {
	a, b := startNode(t), startNode(t)
	nodes := [2]string{a.Address(), b.Address()}
	nodeJob := func(sys *pa.ActorSystem, epoch int64, coordinator string, others []string) *graph.Job {
		g := graph.New("disagree")
		src := graph.From(g, stream.Generate(1000, func(i int64) int64 { return i }))
		graph.Count(graph.KeyBy(src, func(k int64) int64 { return k })).To(stream.FuncSink(func([]stream.Record[stream.KV[int64, int64]]) error { return nil }))
		job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(4), graph.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))),
			func(c *actor.Config) {
				c.Placement = byParity{self: sys.Address(), nodes: nodes}
				c.Cluster = &actor.ClusterRun{System: sys, Epoch: epoch, Coordinator: coordinator, Nodes: others, StartTimeout: 300 * time.Millisecond}
			})
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	errs := make(chan error, 2)
	go func() { errs <- nodeJob(a, 1, "", []string{b.Address()}).Run(context.Background()) }()
	go func() { errs <- nodeJob(b, 2, a.Address(), []string{a.Address()}).Run(context.Background()) }()
	for range 2 {
		if err := <-errs; !errors.Is(err, actor.ErrNotStarted) {
			t.Errorf("Run = %v, want ErrNotStarted", err)
		}
	}
}
