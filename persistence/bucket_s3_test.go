package persistence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	_ "gocloud.dev/blob/s3blob"

	"github.com/eddyflow/eddy/persistence/s3test"
)

// TestBucketCheckpointsS3 runs the checkpoint store and the fence against a real
// S3-compatible server, SeaweedFS, started once for all the subtests.
func TestBucketCheckpointsS3(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "ckpt")
	where := "s3://ckpt"
	prefixes := 0
	newPrefix := func() string {
		prefixes++
		return fmt.Sprintf("t%d/", prefixes)
	}

	t.Run("contract", func(t *testing.T) {
		runCheckpointContract(t, func(t *testing.T) CheckpointStore {
			return mustBucketStore(t, bucket, newPrefix(), where)
		})
	})
	for _, tc := range bucketCases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, bucket, newPrefix(), where) })
	}
	for _, tc := range fenceS3Cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, bucket, newPrefix(), where) })
	}

	t.Run("open by URL", func(t *testing.T) {
		// The way docs/readme-objstore.md tells users to point a job at a server.
		ctx := context.Background()
		for _, query := range []string{"", "&request_checksum_calculation=when_required"} {
			url := srv.URL("ckpt") + query
			s, b, err := OpenBucketCheckpoints(ctx, url, newPrefix())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, 7, []byte("by url")); err != nil {
				t.Fatalf("write through %s: %v", url, err)
			}
			if got, err := s.Load(ctx, 7); err != nil || string(got) != "by url" {
				t.Fatalf("load through %s: %q, %v", url, got, err)
			}
			if err := s.Write(ctx, 7, nil); !errors.Is(err, ErrExists) {
				t.Fatalf("rewrite through %s: %v, want ErrExists", url, err)
			}
			b.Close()
		}
	})

	t.Run("server refuses conditional puts", func(t *testing.T) {
		// What the store and the fence rest on, asked of the server directly.
		ctx := context.Background()
		key := aws.String(newPrefix() + "obj")
		put := func(body string, cond func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
			in := &s3.PutObjectInput{Bucket: aws.String("ckpt"), Key: key, Body: strings.NewReader(body)}
			cond(in)
			return srv.Client.PutObject(ctx, in)
		}
		ifAbsent := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
		first, err := put("v1", ifAbsent)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := put("v1 again", ifAbsent); !isPreconditionFailed(err) {
			t.Fatalf("If-None-Match: * on an existing key: %v, want 412", err)
		}
		second, err := put("v2", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag })
		if err != nil {
			t.Fatalf("If-Match with the current ETag: %v", err)
		}
		if _, err := put("v3", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag }); !isPreconditionFailed(err) {
			t.Fatalf("If-Match with a stale ETag: %v, want 412", err)
		}
		if aws.ToString(first.ETag) == aws.ToString(second.ETag) {
			t.Fatalf("two contents, one ETag %s", aws.ToString(first.ETag))
		}
	})

	t.Run("fence", func(t *testing.T) {
		ctx := context.Background()
		key := newPrefix() + "fence"
		a := NewBucketFence(bucket, key, where)
		b := NewBucketFence(bucket, key, where)
		if _, err := a.Current(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Current before any claim: %v, want ErrNotFound", err)
		}
		if e, err := a.Claim(ctx, "run-a"); err != nil || e != 1 {
			t.Fatalf("first claim = %d, %v; want epoch 1", e, err)
		}
		for _, r := range []string{"checkpoint 1", "checkpoint 2"} {
			if err := a.Commit(ctx, []byte(r)); err != nil {
				t.Fatalf("commit %q under the current epoch: %v", r, err)
			}
		}
		if e, err := b.Claim(ctx, "run-b"); err != nil || e != 2 {
			t.Fatalf("second claim = %d, %v; want epoch 2", e, err)
		}
		st, err := b.Current(ctx)
		if err != nil || st.Epoch != 2 || st.Holder != "run-b" || string(st.Record) != "checkpoint 2" {
			t.Fatalf("after the claim: %+v, %v; want epoch 2 of run-b carrying checkpoint 2", st, err)
		}
		// The older run, unaware, commits: refused.
		if err := a.Commit(ctx, []byte("checkpoint 3 of run-a")); !errors.Is(err, ErrFenced) {
			t.Fatalf("commit under the stale epoch: %v, want ErrFenced", err)
		}
		if err := b.Commit(ctx, []byte("checkpoint 3")); err != nil {
			t.Fatal(err)
		}
		if st, _ := b.Current(ctx); string(st.Record) != "checkpoint 3" || st.Commit != 1 {
			t.Fatalf("after the new run's commit: %+v", st)
		}
	})

	t.Run("fence: the store refuses a stale commit", func(t *testing.T) {
		// The older run reads the fence while its epoch is still current; the newer run
		// claims between that read and the write. No client-side check can see it: the
		// server's If-Match refuses the write (412).
		ctx := context.Background()
		key := newPrefix() + "fence"
		a := NewBucketFence(bucket, key, where)
		b := NewBucketFence(bucket, key, where)
		if _, err := a.Claim(ctx, "run-a"); err != nil {
			t.Fatal(err)
		}
		a.afterRead = func() {
			if _, err := b.Claim(ctx, "run-b"); err != nil {
				t.Errorf("claim between read and write: %v", err)
			}
		}
		err := a.Commit(ctx, []byte("late"))
		if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "the store refused the write") {
			t.Fatalf("commit crossed by a claim: %v, want ErrFenced from the store's precondition", err)
		}
		if st, _ := b.Current(ctx); st.Epoch != 2 || string(st.Record) == "late" {
			t.Fatalf("fence after the refused commit: %+v", st)
		}
	})

	t.Run("fence: a damaged fence object is an error, not a fresh start", func(t *testing.T) {
		// Claiming over it would restart epochs at 1 and let old runs commit again.
		ctx := context.Background()
		key := newPrefix() + "fence"
		a := NewBucketFence(bucket, key, where)
		if _, err := a.Claim(ctx, "run-a"); err != nil {
			t.Fatal(err)
		}
		editObject(t, bucket, key, flipByte(12))
		_, err := NewBucketFence(bucket, key, where).Claim(ctx, "run-b")
		wantCorrupt(t, err, where+"/"+key, "CRC-32C mismatch")
		if err := a.Commit(ctx, []byte("x")); err == nil {
			t.Fatal("commit over a damaged fence object: no error")
		}
	})

	t.Run("fence: concurrent claims get distinct epochs", func(t *testing.T) {
		// Without compare-and-swap, two claimers reading epoch e would both write e+1.
		ctx := context.Background()
		key := newPrefix() + "fence"
		const runs = 6
		epochs := make([]uint64, runs)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range runs {
			wg.Go(func() {
				<-start
				e, err := NewBucketFence(bucket, key, where).Claim(ctx, fmt.Sprintf("run-%d", i))
				if err != nil {
					t.Errorf("claim %d: %v", i, err)
				}
				epochs[i] = e
			})
		}
		close(start)
		wg.Wait()
		seen := map[uint64]bool{}
		for _, e := range epochs {
			if e < 1 || e > runs || seen[e] {
				t.Fatalf("epochs %v: want each of 1..%d once", epochs, runs)
			}
			seen[e] = true
		}
	})
}

func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed"
}
