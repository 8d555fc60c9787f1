package persistence

import (
	"context"
	"fmt"
	"testing"

	"github.com/eddyflow/eddy/persistence/s3test"
)

// BenchmarkCheckpointStores writes and loads checkpoint metadata of a few sizes in the
// directory store (fsync per write) and in an S3 bucket on a local SeaweedFS server, side
// by side in one run, and the cost of a commit under a BucketFence:
//
//	go test ./persistence -run '^$' -bench CheckpointStores -benchtime 200x
func BenchmarkCheckpointStores(b *testing.B) {
	srv := s3test.Start(b)
	bucket := srv.Bucket(b, "bench")
	stores := []struct {
		name string
		open func(b *testing.B, prefix string) CheckpointStore
	}{
		{"dir", func(b *testing.B, _ string) CheckpointStore {
			s, err := OpenDirCheckpoints(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"s3", func(b *testing.B, prefix string) CheckpointStore {
			s, err := NewBucketCheckpoints(bucket, prefix, "s3://bench")
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	ctx := context.Background()
	run := 0
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		metadata := make([]byte, size)
		for i := range metadata {
			metadata[i] = byte(i * 7)
		}
		for _, st := range stores {
			b.Run(fmt.Sprintf("write/%s/%dKiB", st.name, size>>10), func(b *testing.B) {
				run++
				s := st.open(b, fmt.Sprintf("w%d/", run))
				b.SetBytes(int64(size))
				n := uint64(0)
				for b.Loop() {
					n++
					if err := s.Write(ctx, n, metadata); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("load/%s/%dKiB", st.name, size>>10), func(b *testing.B) {
				run++
				s := st.open(b, fmt.Sprintf("l%d/", run))
				for n := uint64(1); n <= 3; n++ {
					if err := s.Write(ctx, n, metadata); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(size))
				for b.Loop() {
					// What a restore does: list, then load the newest.
					if l, err := LoadLatestValid(ctx, s); err != nil || l.N != 3 {
						b.Fatalf("LoadLatestValid = %d, %v", l.N, err)
					}
				}
			})
		}
	}
	b.Run("fence-commit/s3", func(b *testing.B) {
		// A commit under a fence: a GET of the fence object and a conditional PUT.
		f := NewBucketFence(bucket, "fence", "s3://bench")
		if _, err := f.Claim(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		record := []byte("checkpoint 1234567")
		for b.Loop() {
			if err := f.Commit(ctx, record); err != nil {
				b.Fatal(err)
			}
		}
	})
}
