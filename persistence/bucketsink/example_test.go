package bucketsink_test

import (
	"context"
	"log"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/bucketsink"
	"github.com/eddyflow/eddy/stream"
)

// A job whose checkpoints and output live in one S3 bucket, its commits fenced by the run's
// epoch. (Compiled, not run: it needs an S3 server.) On a cluster, cluster.Node claims or
// enters the epoch before each run (NodeConfig.Fence: the store); alone, the job claims it.
func Example() {
	ctx := context.Background()
	url := "s3://eddy?endpoint=http://10.0.0.5:8333&use_path_style=true&region=us-east-1"
	bucket, err := blob.OpenBucket(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer bucket.Close()
	fence := persistence.NewBucketFence(bucket, "jobs/words/fence", "s3://eddy")
	store, err := persistence.NewFencedCheckpoints(bucket, "jobs/words/", "s3://eddy", fence)
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := store.Claim(ctx, "words, run alone"); err != nil {
		log.Fatal(err)
	}
	g := graph.New("words")
	graph.From(g, stream.Slice([]string{"a", "b", "c"})).
		To(bucketsink.JSONL[string](bucket, "jobs/words/out/", "s3://eddy", store))
	if err := g.Run(ctx, graph.Checkpoints(store, time.Second)); err != nil {
		log.Fatal(err)
	}
}
