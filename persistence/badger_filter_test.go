package persistence

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// The filter never forgets a key it was given, through every growth of its chain, and
// answers most keys it was not given itself.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter()
	const n = 20 * firstFilterKeys // five filters
	key := func(i int) []byte { return binary.BigEndian.AppendUint64([]byte("k"), uint64(i)) }
	for i := range n {
		f.add(key(i))
		f.add(key(i / 2)) // again: an update does not use up room
	}
	if len(f.filters) < 4 || len(f.filters) > 5 {
		t.Errorf("%d keys made a chain of %d filters, want 4 or 5", n, len(f.filters))
	}
	for i := range n {
		if !f.mayContain(key(i)) {
			t.Fatalf("key %d was added but the filter says it is not there", i)
		}
	}
	positives := 0
	for i := n; i < 2*n; i++ {
		if f.mayContain(key(i)) {
			positives++
		}
	}
	if rate := float64(positives) / n; rate > 0.05 {
		t.Errorf("%.1f%% false positives, want at most 5%%", 100*rate)
	}
}

// A key that is not there costs no Badger read; one that is, is found: written through this
// KeyedValues, through another of the same generation, or by an earlier process (the filter
// of a generation opened again is built from the keys it holds).
func TestKeyedValuesFilter(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	const n = 3000
	keys, values := make([][]byte, n), make([][]byte, n)
	fresh := make([][]byte, n)
	for i := range n {
		keys[i], values[i], fresh[i] = fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i), fmt.Appendf(nil, "new%d", i)
	}
	a := mustKV(t, db, "job/latest/0")
	if err := a.PutBatch(keys, values); err != nil {
		t.Fatal(err)
	}
	// All found: the writes, still in the shared write batch, are committed by the read.
	check := func(kv *KeyedValues, what string) {
		t.Helper()
		seen := 0
		err := kv.GetBatch(append(append([][]byte{}, keys...), fresh...), func(i int, v []byte) error {
			if i >= n || !bytes.Equal(v, values[i]) {
				t.Fatalf("%s: key %d has %q", what, i, v)
			}
			seen++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen != n {
			t.Fatalf("%s: %d of %d keys found", what, seen, n)
		}
	}
	lookups := func(kv *KeyedValues) uint64 { return kv.gen.known.lookups.Load() }
	before := lookups(a)
	check(a, "the writer")
	if got := lookups(a) - before; got != 0 {
		t.Errorf("%d Badger lookups for keys whose writes are not flushed yet, want 0: they are in memory", got)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	before = lookups(a)
	check(a, "the writer, flushed")
	if got := lookups(a) - before; got < n || got > n+n/20 {
		t.Errorf("%d Badger lookups for %d keys that are there and %d that are not; want %d to %d", got, n, n, n, n+n/20)
	}
	// New keys alone: (almost) no lookups.
	before = lookups(a)
	if err := a.GetBatch(fresh, func(int, []byte) error { t.Fatal("a new key was found"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := lookups(a) - before; got > n/20 {
		t.Errorf("%d Badger lookups for %d new keys, want at most %d", got, n, n/20)
	}
	// Another KeyedValues of the generation, opened after the writes were staged by a
	// second identity: it shares the filter and sees the writes.
	b := mustKV(t, db, "job/latest/1")
	if err := b.PutBatch(keys[:10], values[:10]); err != nil {
		t.Fatal(err)
	}
	if err := a.PutBatch(keys[:1], values[:1]); err != nil {
		t.Fatal(err)
	}
	check(mustKV(t, db, "job/latest/0"), "a second KeyedValues")
	// A new process: the filter is built from the keys in Badger.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = OpenBadger(dir); err != nil {
		t.Fatal(err)
	}
	check(mustKV(t, db, "job/latest/0"), "after a reopen")
	if v, ok, err := mustKV(t, db, "job/latest/1").Get(keys[9]); err != nil || !ok || !bytes.Equal(v, values[9]) {
		t.Errorf("the other identity's key after a reopen: %q, %v, %v", v, ok, err)
	}
	// A fresh generation knows no keys, and finds those written into it.
	f, err := db.FreshKeyedValues("job/latest/0")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.Get(keys[0]); err != nil || ok {
		t.Errorf("a fresh generation has key 0: %v, %v", ok, err)
	}
	if err := f.PutBatch(keys, values); err != nil {
		t.Fatal(err)
	}
	check(f, "a fresh generation")
}

// A write Badger would refuse (a key longer than it takes) is a clear error before anything
// goes into the shared write batch: the other states' writes in it are not lost.
func TestKeyedValuesRefusedWrite(t *testing.T) {
	db, err := OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := mustKV(t, db, "job/x/0"), mustKV(t, db, "job/x/1")
	if err := a.PutBatch([][]byte{[]byte("k")}, [][]byte{[]byte("v")}); err != nil {
		t.Fatal(err)
	}
	err = b.PutBatch([][]byte{[]byte("ok"), make([]byte, maxStateKey)}, [][]byte{[]byte("v"), []byte("v")})
	if err == nil || !strings.Contains(err.Error(), "key 1 is") {
		t.Fatalf("a key longer than Badger takes: %v, want an error naming it", err)
	}
	if v, ok, err := a.Get([]byte("k")); err != nil || !ok || string(v) != "v" {
		t.Errorf("the other state's write after the refusal: %q, %v, %v", v, ok, err)
	}
	if _, ok, err := b.Get([]byte("ok")); err != nil || ok {
		t.Errorf("a key of the refused batch was written: %v, %v", ok, err)
	}
}
