package cluster_test

import (
	"context"
	"log"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// A node of a cluster runs a counting job with the other nodes: every node runs this same
// program, pointing Seeds at any node already up. (Not run here: it waits for peers.)
func ExampleNode_Run() {
	ctx := context.Background()
	store, err := persistence.OpenDirCheckpoints("/shared/state") // every node reaches it
	if err != nil {
		log.Fatal(err)
	}
	node, err := cluster.StartNode(ctx, cluster.NodeConfig{
		Membership: cluster.Config{NodeID: "n2", BindAddr: "10.0.0.2:7946", Seeds: []string{"10.0.0.1:7946"}},
		RemoteAddr: "10.0.0.2:8090",
		AdminAddr:  "127.0.0.1:9090",
		FenceDir:   "/shared/state",
		Expect:     3,
		Insecure:   true, // a trusted network; elsewhere give Membership.Key and ServerTLS/ClientTLS
	})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Leave(ctx) // hands its key groups off at a checkpoint
	err = node.Run(ctx, "counts", 128, func(option func(*actor.Config)) (cluster.JobRun, error) {
		g := graph.New("counts")
		words := graph.From(g, stream.Lines("/shared/words.txt"))
		graph.Count(graph.KeyBy(words, func(w string) string { return w })).To(stream.StdoutSink[stream.KV[string, int64]]())
		return g.Build(graph.MaxKeyGroups(128), graph.Checkpoints(store, time.Second), option)
	})
	if err != nil {
		log.Fatal(err)
	}
}
