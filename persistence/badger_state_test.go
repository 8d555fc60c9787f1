package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestKeyedValues(t *testing.T) {
	db, err := OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := mustKV(t, db, "job/count/1"), mustKV(t, db, "job/count/2")
	if err := a.PutBatch([][]byte{[]byte("x"), []byte("y")}, [][]byte{[]byte("1"), []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := a.Get([]byte("x")); err != nil || !ok || !bytes.Equal(v, []byte("1")) {
		t.Errorf("Get x = %q, %v, %v; want 1", v, ok, err)
	}
	if _, ok, err := b.Get([]byte("x")); err != nil || ok {
		t.Errorf("another identity sees x: %v, %v", ok, err)
	}
	if _, ok, err := a.Get([]byte("nope")); err != nil || ok {
		t.Errorf("a missing key: %v, %v", ok, err)
	}
	if err := a.PutBatch([][]byte{[]byte("x")}, [][]byte{nil}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Get([]byte("x")); ok {
		t.Error("x is still there after its delete")
	}
	if err := a.PutBatch([][]byte{[]byte("x")}, nil); err == nil {
		t.Error("keys and values of different lengths were accepted")
	}
	// A value whose frame is damaged is reported, not returned (once the writes are
	// committed: until then reads find them in memory).
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.db.Update(func(txn *badger.Txn) error { return txn.Set(a.key([]byte("y")), []byte{1, 0, 0, 0, 9, 1, 2}) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get([]byte("y")); err == nil {
		t.Error("a damaged value was returned")
	}
}

func mustKV(t *testing.T, db *BadgerDB, identity string) *KeyedValues {
	t.Helper()
	kv, err := db.KeyedValues(identity)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Scan sees one identity's values in key order. A fresh generation starts empty, is what
// KeyedValues returns from then on (in a new process too), and the old one is deleted in
// the background, in as many write batches as it takes, leaving other identities alone.
func TestKeyedValuesGenerations(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }() // whichever is open when the test ends
	a, a1 := mustKV(t, db, "job/count/1"), mustKV(t, db, "job/count/10")
	const n = clearBatch + 100
	keys, values := make([][]byte, n), make([][]byte, n)
	for i := range n {
		keys[i], values[i] = fmt.Appendf(nil, "k%06d", i), fmt.Appendf(nil, "v%d", i)
	}
	if err := a.PutBatch(keys, values); err != nil {
		t.Fatal(err)
	}
	if err := a1.PutBatch(keys[:3], values[:3]); err != nil {
		t.Fatal(err)
	}
	count := func(kv *KeyedValues) int {
		t.Helper()
		i := 0
		err := kv.Scan(func(k, v []byte) error {
			if !bytes.Equal(k, keys[i]) || !bytes.Equal(v, values[i]) {
				t.Fatalf("scan %d: %q=%q, want %q=%q", i, k, v, keys[i], values[i])
			}
			i++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	if got := count(a); got != n {
		t.Fatalf("scan saw %d values, want %d", got, n)
	}
	stop := errors.New("stop")
	if err := a.Scan(func(k, v []byte) error { return stop }); err != stop {
		t.Errorf("Scan returned %v, want the callback's error", err)
	}
	fresh, err := db.FreshKeyedValues("job/count/1")
	if err != nil {
		t.Fatal(err)
	}
	if got := count(fresh); got != 0 {
		t.Errorf("a fresh generation holds %d values", got)
	}
	if err := fresh.PutBatch(keys[:2], values[:2]); err != nil {
		t.Fatal(err)
	}
	// The old generation goes, in the background.
	left := func() int {
		t.Helper()
		i := 0
		if err := a.Scan(func(k, v []byte) error { i++; return nil }); err != nil {
			t.Fatal(err)
		}
		return i
	}
	deadline := time.Now().Add(10 * time.Second)
	for left() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the old generation still holds %d values", left())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := count(a1); got != 3 {
		t.Errorf("job/count/10 holds %d values after job/count/1's old generation went, want 3", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := count(mustKV(t, db, "job/count/1")); got != 2 {
		t.Errorf("after a reopen, the current generation holds %d values, want 2", got)
	}
	a1 = mustKV(t, db, "job/count/10")
	if err := db.db.Update(func(txn *badger.Txn) error { return txn.Set(a1.key([]byte("z")), []byte{1, 0, 0, 0, 9, 1, 2}) }); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if err := a1.Scan(func(k, v []byte) error { return nil }); !errors.As(err, &ce) {
		t.Errorf("Scan over a damaged value = %v, want a *CorruptError", err)
	}
}
