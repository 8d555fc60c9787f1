package persistence

import (
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/eddyflow/eddy/stream"
)

func TestUpsertTable(t *testing.T) {
	db, err := OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := stream.CodecFor[string]()
	values, _ := stream.CodecFor[int64]()
	tab := NewUpsertTable(db, "counts", keys, values)
	other := NewUpsertTable(db, "counts2", keys, values)
	if err := other.WriteUpserts([]stream.Upsert[string, int64]{{Key: "a", Value: 99}}); err != nil {
		t.Fatal(err)
	}
	batch := []stream.Upsert[string, int64]{{Key: "a", Value: 1}, {Key: "b", Value: 1}, {Key: "a", Value: 2}, {Key: "c", Value: 5}, {Key: "c", Delete: true}}
	for range 2 { // written again, as a replay would: nothing changes
		if err := tab.WriteUpserts(batch); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int64{}
	if err := tab.All(func(k string, v int64) error { got[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] != 2 || got["b"] != 1 {
		t.Errorf("table %v, want a=2 b=1 (c deleted, counts2 apart)", got)
	}
	if v, ok, err := tab.Get("a"); err != nil || !ok || v != 2 {
		t.Errorf("Get(a) = %d, %v, %v", v, ok, err)
	}
	if _, ok, err := tab.Get("c"); err != nil || ok {
		t.Errorf("Get(c) found a deleted key: %v, %v", ok, err)
	}
	k, _ := tab.key("b")
	if err := db.db.Update(func(txn *badger.Txn) error { return txn.Set(k, []byte{1, 0, 0, 0, 9, 1}) }); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if _, _, err := tab.Get("b"); !errors.As(err, &ce) {
		t.Errorf("Get of a damaged row = %v, want a *CorruptError", err)
	}
}
