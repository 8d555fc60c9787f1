package persistence_test

import (
	"context"
	"errors"
	"fmt"

	"gocloud.dev/blob/memblob"

	"github.com/eddyflow/eddy/persistence"
)

// A checkpoint store in a bucket: here in memory; for S3 open the bucket with
// persistence.OpenBucketCheckpoints(ctx, "s3://ckpt?region=eu-west-1", "jobs/clicks/")
// (and import _ "gocloud.dev/blob/s3blob"). Writing a checkpoint that exists is refused
// by the store's create-if-absent precondition.
func ExampleNewBucketCheckpoints() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	store, err := persistence.NewBucketCheckpoints(bucket, "jobs/clicks/", "mem://ckpt")
	if err != nil {
		panic(err)
	}
	for n := uint64(1); n <= 3; n++ {
		if err := store.Write(ctx, n, fmt.Appendf(nil, "offsets after checkpoint %d", n)); err != nil {
			panic(err)
		}
	}
	err = store.Write(ctx, 3, []byte("again"))
	fmt.Println("rewrite 3:", errors.Is(err, persistence.ErrExists))
	latest, err := persistence.LoadLatestValid(ctx, store)
	fmt.Printf("restore from %d: %s (%v)\n", latest.N, latest.Data, err)
	// Output:
	// rewrite 3: true
	// restore from 3: offsets after checkpoint 3 (<nil>)
}

// A run claims an epoch in the job's bucket and commits through the fence; once a newer
// run has claimed, the older run's commits are refused by the store (412) with ErrFenced.
// Needs an S3 bucket (compare-and-swap); not run here.
func ExampleBucketFence() {
	ctx := context.Background()
	store, bucket, err := persistence.OpenBucketCheckpoints(ctx, "s3://ckpt?region=eu-west-1", "jobs/clicks/")
	if err != nil {
		panic(err)
	}
	defer bucket.Close()
	fence := persistence.NewBucketFence(bucket, "jobs/clicks/fence", "s3://ckpt")
	epoch, err := fence.Claim(ctx, "node-a")
	if err != nil {
		panic(err)
	}
	last, _ := fence.Current(ctx) // the restore point the previous run committed
	fmt.Printf("epoch %d restores from %q\n", epoch, last.Record)
	// Checkpoint 8's metadata is written first (harmless if this run is stale) ...
	if err := store.Write(ctx, 8, []byte("metadata")); err != nil {
		panic(err)
	}
	// ... and becomes the restore point only through the fence.
	if err := fence.Commit(ctx, []byte("checkpoint 8")); errors.Is(err, persistence.ErrFenced) {
		fmt.Println("a newer run holds the job: stop")
	}
}
