package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// bucketCases are what BucketCheckpoints promises beyond the CheckpointStore contract; they
// run on memblob here and on SeaweedFS in TestBucketCheckpointsS3. Each gets a fresh
// bucket (or a fresh part of one: prefix) and the name the store gives it in errors.
var bucketCases = []struct {
	name string
	run  func(t *testing.T, bucket *blob.Bucket, prefix, where string)
}{
	{"create-if-absent race", func(t *testing.T, bucket *blob.Bucket, prefix, where string) {
		// Two stores over the same objects, as two processes would have: for each
		// checkpoint both write at once, and the store's precondition lets exactly one in.
		ctx := context.Background()
		a := mustBucketStore(t, bucket, prefix, where)
		b := mustBucketStore(t, bucket, prefix, where)
		const rounds = 20
		for n := uint64(1); n <= rounds; n++ {
			start := make(chan struct{})
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, s := range []*BucketCheckpoints{a, b} {
				wg.Go(func() {
					<-start
					errs[i] = s.Write(ctx, n, fmt.Appendf(nil, "writer %d", i))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner < 0:
					winner = i
				case errors.Is(err, ErrExists):
				default:
					t.Fatalf("checkpoint %d: writers' errors %v: want one nil and one ErrExists", n, errs)
				}
			}
			if winner < 0 {
				t.Fatalf("checkpoint %d: no writer won: %v", n, errs)
			}
			got, err := a.Load(ctx, n)
			if err != nil || string(got) != fmt.Sprintf("writer %d", winner) {
				t.Fatalf("checkpoint %d = %q, %v; want the winner's (writer %d)", n, got, err, winner)
			}
		}
		wantCheckpoints(t, a, seq(1, rounds)...)
	}},
	{"corrupt object falls back", func(t *testing.T, bucket *blob.Bucket, prefix, where string) {
		ctx := context.Background()
		s := mustBucketStore(t, bucket, prefix, where)
		for n := uint64(1); n <= 3; n++ {
			if err := s.Write(ctx, n, []byte("checkpoint metadata")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.WriteSavepoint(ctx, "sp", []byte("savepoint metadata")); err != nil {
			t.Fatal(err)
		}
		key := func(n uint64) string { return fmt.Sprintf("%scheckpoints/chk-%020d", prefix, n) }
		editObject(t, bucket, key(3), flipByte(15))
		editObject(t, bucket, key(2), truncateTo(20))
		editObject(t, bucket, prefix+"savepoints/sp.savepoint", flipByte(1))
		whereOf := func(k string) string { return where + "/" + k }

		_, err := s.Load(ctx, 3)
		wantCorrupt(t, err, whereOf(key(3)), "CRC-32C mismatch")
		_, err = s.Load(ctx, 2)
		wantCorrupt(t, err, whereOf(key(2)), "truncated: payload is 11 bytes, header says 19")
		_, err = s.LoadSavepoint(ctx, "sp")
		wantCorrupt(t, err, whereOf(prefix+"savepoints/sp.savepoint"), "header says")

		l, err := LoadLatestValid(ctx, s)
		if err != nil || l.N != 1 || string(l.Data) != "checkpoint metadata" || len(l.Skipped) != 2 {
			t.Fatalf("LoadLatestValid = %+v, %v; want checkpoint 1 after skipping 2", l, err)
		}
		if l.Skipped[0].Where != whereOf(key(3)) || l.Skipped[1].Where != whereOf(key(2)) {
			t.Fatalf("skipped %v, want %s then %s", l.Skipped, key(3), key(2))
		}
	}},
	{"prefixes are separate stores", func(t *testing.T, bucket *blob.Bucket, prefix, where string) {
		ctx := context.Background()
		a := mustBucketStore(t, bucket, prefix+"a/", where)
		b := mustBucketStore(t, bucket, prefix+"b/", where)
		if err := a.Write(ctx, 1, []byte("a")); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, 1, []byte("b")); err != nil {
			t.Fatalf("same number under another prefix: %v", err)
		}
		if err := b.Write(ctx, 2, []byte("b")); err != nil {
			t.Fatal(err)
		}
		wantCheckpoints(t, a, 1)
		wantCheckpoints(t, b, 1, 2)
		if _, err := NewBucketCheckpoints(bucket, "no-slash", where); err == nil {
			t.Fatal("prefix without a trailing slash: no error")
		}
	}},
	{"snapshot objects", func(t *testing.T, bucket *blob.Bucket, prefix, where string) {
		runObjectsContract(t, mustBucketStore(t, bucket, prefix, where))
	}},
}

func seq(from, to uint64) []uint64 {
	var ns []uint64
	for n := from; n <= to; n++ {
		ns = append(ns, n)
	}
	return ns
}

func mustBucketStore(t *testing.T, bucket *blob.Bucket, prefix, where string) *BucketCheckpoints {
	t.Helper()
	s, err := NewBucketCheckpoints(bucket, prefix, where)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// editObject replaces the object at key with f(its bytes), bypassing the store, as a bad
// upload or a hand edit would.
func editObject(t *testing.T, bucket *blob.Bucket, key string, f func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	b, err := bucket.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.WriteAll(ctx, key, f(b), nil); err != nil {
		t.Fatal(err)
	}
}

func TestBucketCheckpointsMemblob(t *testing.T) {
	for _, tc := range bucketCases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := memblob.OpenBucket(nil)
			defer bucket.Close()
			tc.run(t, bucket, "jobs/x/", "mem://ckpt")
		})
	}
}

// On a bucket without compare-and-swap writes the fence refuses to work rather than
// pretend: a check followed by a write would not fence anything.
func TestBucketFenceNeedsCompareAndSwap(t *testing.T) {
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	f := NewBucketFence(bucket, "jobs/x/fence", "mem://ckpt")
	if _, err := f.Claim(context.Background(), "run-1"); !errors.Is(err, ErrNoCompareAndSwap) {
		t.Fatalf("Claim on memblob: err = %v, want ErrNoCompareAndSwap", err)
	}
	if err := f.Commit(context.Background(), []byte("x")); err == nil {
		t.Fatal("Commit without a claim: no error")
	}
}

// FuzzDecodeFenceState checks that any bytes in the fence object decode to a state or an
// error, never a panic, and that what decodes encodes back to the same state.
func FuzzDecodeFenceState(f *testing.F) {
	for _, st := range []FenceState{{Epoch: 1, Holder: "run-a"}, {Epoch: 7, Holder: "n", Commit: 3, Record: []byte("checkpoint 42")}} {
		payload, _ := json.Marshal(st)
		f.Add(appendFrame(nil, payload))
	}
	f.Add([]byte{})
	f.Add(appendFrame(nil, []byte(`{"epoch":0}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeFenceState(b)
		if err != nil {
			return
		}
		payload, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeFenceState(appendFrame(nil, payload))
		if err != nil || again.Epoch != st.Epoch || again.Holder != st.Holder || again.Commit != st.Commit || string(again.Record) != string(st.Record) {
			t.Fatalf("%+v re-decoded as %+v, %v", st, again, err)
		}
	})
}
