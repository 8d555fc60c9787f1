package persistence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
)

type checkpointImpl struct {
	name string
	open func(t *testing.T) CheckpointStore
}

// checkpointImpls lists the CheckpointStore implementations that need no server; the
// S3-compatible one runs the same cases against SeaweedFS (TestBucketCheckpointsS3).
var checkpointImpls = []checkpointImpl{
	{"dir", func(t *testing.T) CheckpointStore {
		s, err := OpenDirCheckpoints(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"memblob", func(t *testing.T) CheckpointStore {
		return newTestBucketStore(t, memblob.OpenBucket(nil), "jobs/a/", "mem://ckpt")
	}},
	{"fileblob", func(t *testing.T) CheckpointStore {
		b, err := fileblob.OpenBucket(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return newTestBucketStore(t, b, "", "file://ckpt")
	}},
}

// newTestBucketStore returns the checkpoint store under prefix in bucket, which is closed
// when the test ends.
func newTestBucketStore(t *testing.T, bucket *blob.Bucket, prefix, where string) *BucketCheckpoints {
	t.Helper()
	t.Cleanup(func() { bucket.Close() })
	s, err := NewBucketCheckpoints(bucket, prefix, where)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCheckpoints(t *testing.T, s CheckpointStore, want ...uint64) {
	t.Helper()
	got, err := s.List(context.Background())
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List() = %v, %v; want %v", got, err, want)
	}
}

var checkpointCases = []struct {
	name string
	run  func(t *testing.T, s CheckpointStore)
}{
	{"write list load", func(t *testing.T, s CheckpointStore) {
		ctx := context.Background()
		wantCheckpoints(t, s)
		for _, n := range []uint64{3, 1, 12, 2} {
			if err := s.Write(ctx, n, []byte{byte(n)}); err != nil {
				t.Fatal(err)
			}
		}
		wantCheckpoints(t, s, 1, 2, 3, 12)
		got, err := s.Load(ctx, 12)
		if err != nil || !slices.Equal(got, []byte{12}) {
			t.Fatalf("Load(12) = %v, %v", got, err)
		}
		if _, err := s.Load(ctx, 4); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load(4): err = %v, want ErrNotFound", err)
		}
		if err := s.Write(ctx, 3, nil); !errors.Is(err, ErrExists) {
			t.Fatalf("rewrite 3: err = %v, want ErrExists", err)
		}
		l, err := LoadLatestValid(ctx, s)
		if err != nil || l.N != 12 {
			t.Fatalf("LoadLatestValid = %+v, %v", l, err)
		}
	}},
	{"keep and delete", func(t *testing.T, s CheckpointStore) {
		ctx := context.Background()
		for n := uint64(1); n <= 5; n++ {
			if err := s.Write(ctx, n, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.WriteSavepoint(ctx, "before-upgrade", []byte("sp")); err != nil {
			t.Fatal(err)
		}
		if err := s.Keep(ctx, 2); err != nil {
			t.Fatal(err)
		}
		wantCheckpoints(t, s, 4, 5)
		if err := s.Delete(ctx, 5); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, 5); err != nil {
			t.Fatalf("delete twice: %v", err)
		}
		wantCheckpoints(t, s, 4)
		if names, _ := s.ListSavepoints(ctx); !slices.Equal(names, []string{"before-upgrade"}) {
			t.Fatalf("savepoints after Keep: %q", names)
		}
		if err := s.Keep(ctx, 0); err == nil {
			t.Fatal("keep 0: no error")
		}
	}},
	{"savepoints", func(t *testing.T, s CheckpointStore) {
		ctx := context.Background()
		for _, name := range []string{"v2", "nightly.2024-05-01", "A_b-c"} {
			if err := s.WriteSavepoint(ctx, name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.WriteSavepoint(ctx, "v2", nil); !errors.Is(err, ErrExists) {
			t.Fatalf("rewrite: err = %v, want ErrExists", err)
		}
		for _, bad := range []string{"", ".hidden", "-x", "a/b", "../up", "a b"} {
			if err := s.WriteSavepoint(ctx, bad, nil); err == nil {
				t.Errorf("savepoint %q: no error", bad)
			}
		}
		names, err := s.ListSavepoints(ctx)
		if err != nil || !slices.Equal(names, []string{"A_b-c", "nightly.2024-05-01", "v2"}) {
			t.Fatalf("ListSavepoints = %q, %v", names, err)
		}
		got, err := s.LoadSavepoint(ctx, "v2")
		if err != nil || string(got) != "v2" {
			t.Fatalf("LoadSavepoint = %q, %v", got, err)
		}
		if err := s.DeleteSavepoint(ctx, "v2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LoadSavepoint(ctx, "v2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("load deleted: err = %v, want ErrNotFound", err)
		}
		wantCheckpoints(t, s)
	}},
}

func TestCheckpointStore(t *testing.T) {
	for _, impl := range checkpointImpls {
		t.Run(impl.name, func(t *testing.T) { runCheckpointContract(t, impl.open) })
	}
}

// runCheckpointContract runs the cases every CheckpointStore passes, each on a new, empty
// store from open.
func runCheckpointContract(t *testing.T, open func(t *testing.T) CheckpointStore) {
	for _, tc := range checkpointCases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

// TestDirCheckpointsInterruptedWrite checks that a temporary file left by a crash is not
// listed and is removed on open.
func TestDirCheckpointsInterruptedWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDirCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), 1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "checkpoints", tempPrefix+"123")
	if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantCheckpoints(t, s, 1)
	if _, err := OpenDirCheckpoints(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file still there: %v", err)
	}
}
