package persistence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
)

func TestLineageWith(t *testing.T) {
	for _, tc := range []struct {
		name            string
		before          Lineage
		id, epoch, from uint64
		deleted         []uint64
		runs            []LineageRun
		retained        []uint64
	}{
		{name: "first checkpoint", id: 1, epoch: 1, from: 0,
			runs: []LineageRun{{1, 1, 1}}, retained: []uint64{1}},
		{name: "the same run goes on", before: Lineage{Runs: []LineageRun{{1, 1, 2}}, Retained: []uint64{1, 2}}, id: 4, epoch: 1, from: 0, deleted: []uint64{1},
			runs: []LineageRun{{1, 1, 4}}, retained: []uint64{2, 4}},
		{name: "a new run from the newest", before: Lineage{Runs: []LineageRun{{1, 1, 3}}, Retained: []uint64{2, 3}}, id: 4, epoch: 3, from: 3,
			runs: []LineageRun{{1, 1, 3}, {3, 4, 4}}, retained: []uint64{2, 3, 4}},
		{name: "a new run that failed a checkpoint first", before: Lineage{Runs: []LineageRun{{1, 1, 3}}, Retained: []uint64{3}}, id: 6, epoch: 2, from: 3,
			runs: []LineageRun{{1, 1, 3}, {2, 4, 6}}, retained: []uint64{3, 6}},
		{name: "a fallback past a corrupt checkpoint drops what came after", before: Lineage{Runs: []LineageRun{{1, 1, 3}, {2, 4, 5}}, Retained: []uint64{3, 4, 5}}, id: 4, epoch: 7, from: 3,
			runs: []LineageRun{{1, 1, 3}, {7, 4, 4}}, retained: []uint64{3, 4}},
		{name: "unpinned: the run takes on after the id before", before: Lineage{Runs: []LineageRun{{1, 1, 3}}, Retained: []uint64{3}}, id: 4, epoch: 2, from: math.MaxUint64,
			runs: []LineageRun{{1, 1, 3}, {2, 4, 4}}, retained: []uint64{3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deleted := map[uint64]bool{}
			for _, d := range tc.deleted {
				deleted[d] = true
			}
			got := tc.before.with(tc.id, tc.epoch, tc.from, deleted)
			if !slices.Equal(got.Runs, tc.runs) || !slices.Equal(got.Retained, tc.retained) {
				t.Errorf("with(%d, epoch %d, from %d) = %+v, want runs %+v retained %v", tc.id, tc.epoch, tc.from, got, tc.runs, tc.retained)
			}
		})
	}
}

// fenceS3Cases need compare-and-swap: they run on SeaweedFS in TestBucketCheckpointsS3.
var fenceS3Cases = []struct {
	name string
	run  func(t *testing.T, bucket *blob.Bucket, prefix, where string)
}{
	{"fence: one epoch, many nodes", func(t *testing.T, bucket *blob.Bucket, prefix, where string) {
		// The coordinator claims and commits; two other nodes of its run enter the epoch
		// and confirm at the same time: their 412s from each other are retried, not fences.
		ctx := context.Background()
		key := prefix + "fence"
		coord := NewBucketFence(bucket, key, where)
		epoch, err := coord.Claim(ctx, "coordinator")
		if err != nil {
			t.Fatal(err)
		}
		others := []*BucketFence{NewBucketFence(bucket, key, where), NewBucketFence(bucket, key, where)}
		for _, o := range others {
			o.Enter(epoch, coord.Record())
		}
		var wg sync.WaitGroup
		for i, o := range others {
			wg.Go(func() {
				for range 5 {
					if err := o.Confirm(ctx); err != nil {
						t.Errorf("node %d: confirm under the current epoch: %v", i, err)
					}
				}
			})
		}
		for i := range 5 {
			if err := coord.Commit(ctx, fmt.Appendf(nil, "checkpoint %d", i+1)); err != nil {
				t.Errorf("commit under the current epoch: %v", err)
			}
		}
		wg.Wait()
		st, err := coord.Current(ctx)
		if err != nil || st.Commit != 15 || string(st.Record) != "checkpoint 5" {
			t.Fatalf("after 5 commits and 10 confirms: %+v, %v; want commit 15 keeping checkpoint 5", st, err)
		}
		if _, err := NewBucketFence(bucket, key, where).Claim(ctx, "newer run"); err != nil {
			t.Fatal(err)
		}
		for _, f := range append(others, coord) {
			if err := f.Confirm(ctx); !errors.Is(err, ErrFenced) {
				t.Errorf("confirm under the old epoch: %v, want ErrFenced", err)
			}
			select {
			case <-f.Fenced():
			default:
				t.Error("Fenced not closed after a refused confirm")
			}
		}
		late := NewBucketFence(bucket, key, where)
		late.Enter(epoch, nil)
		if err := late.Check(ctx); !errors.Is(err, ErrFenced) {
			t.Errorf("check under the old epoch: %v, want ErrFenced", err)
		}
	}},
	{"fenced checkpoints: a stale run completes nothing", func(t *testing.T, bucket *blob.Bucket, prefix, where string) {
		ctx := context.Background()
		open := func() *FencedCheckpoints {
			s, err := NewFencedCheckpoints(bucket, prefix, where, NewBucketFence(bucket, prefix+"fence", where))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		old := open()
		if _, _, err := old.Claim(ctx, "old run"); err != nil {
			t.Fatal(err)
		}
		for _, n := range []uint64{1, 2} {
			if err := old.Write(ctx, n, fmt.Appendf(nil, "old %d", n)); err != nil {
				t.Fatal(err)
			}
		}
		// A newer run claims: it sees the old run's checkpoints, and the old run, still
		// going, can complete none.
		newer := open()
		epoch, record, err := newer.Claim(ctx, "newer run")
		if err != nil {
			t.Fatal(err)
		}
		if err := newer.Enter(epoch, record, 2); err != nil {
			t.Fatal(err)
		}
		if ids, _ := newer.List(ctx); !slices.Equal(ids, []uint64{1, 2}) {
			t.Fatalf("the newer run lists %v, want [1 2]", ids)
		}
		if err := old.Write(ctx, 3, []byte("old 3")); !errors.Is(err, ErrFenced) {
			t.Fatalf("the old run writes checkpoint 3: %v, want ErrFenced", err)
		}
		if err := newer.Write(ctx, 3, []byte("new 3")); err != nil {
			t.Fatalf("the newer run writes checkpoint 3 (the same id, its own key): %v", err)
		}
		// A third run reads the lineage: 3 is the newer run's.
		third := open()
		if _, _, err := third.Claim(ctx, "third run"); err != nil {
			t.Fatal(err)
		}
		ids, _ := third.List(ctx)
		got, err := third.Load(ctx, 3)
		if !slices.Equal(ids, []uint64{1, 2, 3}) || err != nil || string(got) != "new 3" {
			t.Fatalf("third run: list %v, checkpoint 3 %q (%v); want [1 2 3] and the newer run's", ids, got, err)
		}
		if !third.Committed(3, epoch) || third.Committed(3, epoch-1) || !third.Committed(1, epoch-1) {
			t.Errorf("Committed does not follow the lineage %+v", third.lineage)
		}
		if newest, err := third.Newest(ctx); err != nil || newest != 3 {
			t.Errorf("Newest = %d, %v; want 3", newest, err)
		}
	}},
}

// A locked fence in a local directory (fileblob) fences as the S3 one does: distinct
// epochs for concurrent claims, and a stale commit refused.
func TestLockedBucketFence(t *testing.T) {
	dir := t.TempDir()
	bucket, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	ctx := context.Background()
	lock := filepath.Join(dir, "fence.lock")
	newFence := func() *BucketFence { return NewLockedBucketFence(bucket, "job/fence", "file://"+dir, lock) }
	const runs = 6
	epochs := make([]uint64, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			e, err := newFence().Claim(ctx, fmt.Sprintf("run-%d", i))
			if err != nil {
				t.Errorf("claim %d: %v", i, err)
			}
			epochs[i] = e
		})
	}
	wg.Wait()
	slices.Sort(epochs)
	if !slices.Equal(epochs, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("concurrent claims took epochs %v, want 1..6 once each", epochs)
	}
	a, b := newFence(), newFence()
	if _, err := a.Claim(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, []byte("checkpoint 1")); err != nil {
		t.Fatal(err)
	}
	// A claim that comes between a commit's read and its write waits for the write: it
	// cannot slip in between (as the S3 fence's conditional PUT would refuse the write).
	claimed := make(chan error, 1)
	a.afterRead = func() {
		go func() {
			_, err := b.Claim(ctx, "b")
			claimed <- err
		}()
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.Commit(ctx, []byte("checkpoint 2")); err != nil {
		t.Fatalf("commit before the claim got the lock: %v", err)
	}
	if err := <-claimed; err != nil {
		t.Fatal(err)
	}
	a.afterRead = nil
	if err := a.Commit(ctx, []byte("checkpoint 3")); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale commit: %v, want ErrFenced", err)
	}
	if st, _ := b.Current(ctx); st.Epoch != 8 || string(st.Record) != "checkpoint 2" {
		t.Fatalf("fence after the stale commit: %+v, want epoch 8 carrying checkpoint 2", st)
	}
}
