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
