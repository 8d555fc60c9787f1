package persistence

import (
	"bytes"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestKeyedValues(t *testing.T) {
	db, err := OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := db.KeyedValues("job/count/1"), db.KeyedValues("job/count/2")
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
	// A value whose frame is damaged is reported, not returned.
	if err := db.db.Update(func(txn *badger.Txn) error { return txn.Set(a.key([]byte("y")), []byte{1, 0, 0, 0, 9, 1, 2}) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get([]byte("y")); err == nil {
		t.Error("a damaged value was returned")
	}
}
