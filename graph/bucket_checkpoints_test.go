package graph_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/s3test"
	"github.com/eddyflow/eddy/stream"
)

// A job whose checkpoints live in an S3 bucket (SeaweedFS, a real S3-compatible server),
// cut off mid-run and started again, restores from the newest checkpoint in the bucket and
// ends with every key's exact count in its upsert table.
func TestCheckpointsInS3Bucket(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "ckpt")
	store, err := persistence.NewBucketCheckpoints(bucket, "jobs/upserts/", "s3://ckpt")
	if err != nil {
		t.Fatal(err)
	}
	const n, keys = 200_000, 5_000
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kc, _ := stream.CodecFor[int64]()
	table := persistence.NewUpsertTable(db, "counts", kc, kc)
	newJob := func(cut *cutPoint) *graph.Job {
		g := graph.New("upserts")
		src := graph.From(g, cut.source(n), graph.Name("src"))
		byKey := graph.Map(src, func(i int64) int64 { return i % keys })
		graph.Count(graph.KeyBy(byKey, func(k int64) int64 { return k }), graph.Name("count"), cutByRecords).To(stream.UpsertSink[int64, int64](table))
		return build(t, g, graph.Parallelism(2), graph.MaxKeyGroups(8), graph.Checkpoints(store, 20*time.Millisecond))
	}
	cut := &cutPoint{a: n / 8, b: n / 4}
	cutOff(t, newJob(cut), 3, cut) // the table now holds counts past the last checkpoint
	ids, err := store.List(context.Background())
	if err != nil || len(ids) == 0 {
		t.Fatalf("checkpoints in the bucket after the cut: %v, %v", ids, err)
	}
	runRestored(t, newJob(nil), n)
	rows := 0
	err = table.All(func(k, c int64) error {
		rows++
		if c != n/keys {
			return fmt.Errorf("key %d: %d in the table, want %d", k, c, n/keys)
		}
		return nil
	})
	if err != nil || rows != keys {
		t.Fatalf("%d rows, %v; want %d rows of %d", rows, err, keys, n/keys)
	}
}
