package bucketsink_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/bucketsink"
	"github.com/eddyflow/eddy/persistence/s3test"
	"github.com/eddyflow/eddy/stream"
)

// run is one run of a job in the test: its checkpoint store (the fence) and its sink.
type run struct {
	store *persistence.FencedCheckpoints
	sink  stream.TwoPhaseSink[string]
}

func newRun(t *testing.T, bucket *blob.Bucket) run {
	t.Helper()
	store, err := persistence.NewFencedCheckpoints(bucket, "job/", "s3://sink", persistence.NewBucketFence(bucket, "job/fence", "s3://sink"))
	if err != nil {
		t.Fatal(err)
	}
	return run{store: store, sink: bucketsink.JSONL[string](bucket, "job/out/", "s3://sink", store)}
}

func write(t *testing.T, s stream.TwoPhaseSink[string], instance int, vals ...string) {
	t.Helper()
	var recs []stream.Record[string]
	for _, v := range vals {
		recs = append(recs, stream.Record[string]{Value: v})
	}
	if err := s.WriteBatchFor(instance, recs); err != nil {
		t.Fatal(err)
	}
}

// contents returns the committed output: each committed object's lines, by name.
func contents(t *testing.T, bucket *blob.Bucket) map[string]string {
	t.Helper()
	out := map[string]string{}
	it := bucket.List(&blob.ListOptions{Prefix: "job/out/", Delimiter: "/"})
	for {
		obj, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if obj.IsDir {
			continue
		}
		b, err := bucket.ReadAll(context.Background(), obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(obj.Key, "job/out/")] = string(b)
	}
}

// The sink's commits are fenced: a run that a newer one fenced off commits nothing, and the
// newer run's Recover commits exactly what the older run's checkpoints completed, and drops
// the rest, on a real S3 server (SeaweedFS).
func TestSinkFencedCommit(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "sink")
	ctx := context.Background()

	old := newRun(t, bucket)
	if _, _, err := old.store.Claim(ctx, "old run"); err != nil {
		t.Fatal(err)
	}
	if err := old.sink.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	// Checkpoint 1: complete and committed.
	write(t, old.sink, 0, "a", "b")
	write(t, old.sink, 1, "c")
	for i := range 2 {
		if err := old.sink.PreCommit(i, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.store.Write(ctx, 1, []byte("checkpoint 1")); err != nil {
		t.Fatal(err)
	}
	if err := old.sink.Commit(1); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"part-c0000000001-i0000.jsonl": "\"a\"\n\"b\"\n", "part-c0000000001-i0001.jsonl": "\"c\"\n"}
	if got := contents(t, bucket); !maps.Equal(got, want) {
		t.Fatalf("after checkpoint 1: %v, want %v", got, want)
	}
	// Checkpoint 2 completes, but instance 1's commit has not happened when the old run
	// pauses; checkpoint 3 is pre-committed and never completes.
	write(t, old.sink, 1, "d")
	if err := old.sink.PreCommit(1, 2); err != nil {
		t.Fatal(err)
	}
	if err := old.store.Write(ctx, 2, []byte("checkpoint 2")); err != nil {
		t.Fatal(err)
	}
	write(t, old.sink, 0, "e")
	if err := old.sink.PreCommit(0, 3); err != nil {
		t.Fatal(err)
	}

	// A newer run claims the fence and recovers to checkpoint 2.
	newer := newRun(t, bucket)
	epoch, record, err := newer.store.Claim(ctx, "newer run")
	if err != nil {
		t.Fatal(err)
	}
	if err := newer.store.Enter(epoch, record, 2); err != nil {
		t.Fatal(err)
	}
	// The old run comes back and commits: refused by the store.
	if err := old.sink.Commit(3); !errors.Is(err, persistence.ErrFenced) {
		t.Fatalf("the old run commits after the claim: %v, want ErrFenced", err)
	}
	if got := contents(t, bucket); !maps.Equal(got, want) {
		t.Fatalf("the fenced-off run committed: %v, want %v", got, want)
	}
	if err := newer.sink.Recover(2, nil); err != nil {
		t.Fatal(err)
	}
	want["part-c0000000002-i0001.jsonl"] = "\"d\"\n" // checkpoint 2 completed; "e" of 3 did not
	if got := contents(t, bucket); !maps.Equal(got, want) {
		t.Fatalf("after the newer run's Recover: %v, want %v", got, want)
	}
	var pending []string
	it := bucket.List(&blob.ListOptions{Prefix: "job/out/.pending/"})
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			break
		}
		pending = append(pending, obj.Key)
	}
	if len(pending) > 0 {
		t.Errorf("pending objects left after Recover: %v", pending)
	}
	attrs, err := bucket.Attributes(ctx, "job/out/part-c0000000002-i0001.jsonl")
	if err != nil || attrs.Metadata["written-epoch"] != "1" || attrs.Metadata["committed-epoch"] != "2" {
		t.Errorf("metadata of the recovered object: %v, %v; want written by epoch 1, committed by 2", attrs, err)
	}
}
