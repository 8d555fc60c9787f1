package cluster_test

import (
	"context"
	"errors"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// A program's main runs its own graph as a node of a cluster: every node runs this program
// with its own flags, e.g.
//
//	app -id n1 -bind 10.0.0.1:7946 -remote 10.0.0.1:8090 -store 's3://ckpt?region=eu-west-1' \
//	    -gossip-key $KEY -tls-cert n1.pem -tls-key n1-key.pem -tls-ca ca.pem -expect 3
//	app -id n2 -bind 10.0.0.2:7946 -remote 10.0.0.2:8090 -join 10.0.0.1:7946 ... (the same)
//
// (Not run here: it waits for its peers.)
func ExampleRunGraph() {
	var cfg cluster.RunConfig
	cfg.Flags(flag.CommandLine)
	flag.Parse()
	// SIGTERM: the node hands its key groups off at a checkpoint and leaves.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	type click struct {
		User string
		At   int64 // Unix ms
	}
	newGraph := func(store *cluster.Store) (*graph.Graph, error) {
		// The output goes into the store too: no node needs a shared directory.
		sink, err := cluster.JSONLSink[stream.WindowResult[string, int64]](store, "out")
		if err != nil {
			return nil, err
		}
		g := graph.New("clicks")
		// Every node has the same file; each reads the byte ranges of the splits it owns.
		clicks := graph.From(g, stream.JSONL[click]("/data/clicks.jsonl"))
		stamped := graph.Timestamps(clicks, func(c click) int64 { return c.At }, stream.BoundedOutOfOrder[click](5*time.Second))
		perUser := graph.KeyBy(stamped, func(c click) string { return c.User }, graph.WithCodec(stream.JSON[click]()))
		graph.Window(perUser, stream.Tumbling(time.Minute), agg.Count[click]()).To(sink)
		return g, nil
	}
	err := cluster.RunGraph(ctx, cfg, newGraph)
	if err != nil && !errors.Is(err, cluster.ErrLeft) {
		log.Fatal(err)
	}
}
