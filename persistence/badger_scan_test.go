package persistence

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// ScanRange reads the identity's keys in a range, in key order, from a seek: only that
// identity's, stopping where f says.
func TestKeyedValuesScanRange(t *testing.T) {
	db, err := OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := mustKV(t, db, "job/count/1"), mustKV(t, db, "job/count/10")
	keys := []string{"a", "ab", "abc", "b", "ba", "c", "\xff"}
	var kb, vb [][]byte
	for _, k := range keys {
		kb, vb = append(kb, []byte(k)), append(vb, []byte("v"+k))
	}
	if err := a.PutBatch(kb, vb); err != nil {
		t.Fatal(err)
	}
	// Another identity whose prefix extends a's: never seen by a's scans.
	if err := b.PutBatch([][]byte{[]byte("a"), []byte("zz")}, [][]byte{[]byte("other"), []byte("other")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		from, to []byte
		stop     int // f stops after this many; 0: never
		want     string
	}{
		{"all", []byte{}, nil, 0, "a ab abc b ba c \xff"},
		{"from", []byte("ab"), nil, 0, "ab abc b ba c \xff"},
		{"from between keys", []byte("bb"), nil, 0, "c \xff"},
		{"range", []byte("ab"), []byte("b"), 0, "ab abc"},
		{"prefix a", []byte("a"), []byte("b"), 0, "a ab abc"},
		{"empty", []byte("x"), []byte("y"), 0, ""},
		{"stop", []byte{}, nil, 2, "a ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := a.ScanRange(tc.from, tc.to, func(k, v []byte) (bool, error) {
				if string(v) != "v"+string(k) {
					t.Errorf("key %q: value %q", k, v)
				}
				got = append(got, string(k))
				return tc.stop == 0 || len(got) < tc.stop, nil
			})
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Errorf("keys %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	boom := errors.New("boom")
	if err := a.ScanRange(nil, nil, func(k, v []byte) (bool, error) { return true, boom }); !errors.Is(err, boom) {
		t.Errorf("an error of f: %v, want it returned", err)
	}
	if !slices.IsSorted(keys) {
		t.Fatal("the test's keys must be sorted")
	}
}
