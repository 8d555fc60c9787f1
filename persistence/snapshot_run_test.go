package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

type kv struct{ k, v string }

func writeRun(t testing.TB, pairs []kv) ([]byte, RunHandle) {
	t.Helper()
	var buf bytes.Buffer
	w := NewRunWriter(&buf)
	for _, p := range pairs {
		if err := w.Add([]byte(p.k), []byte(p.v)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), h
}

func readRun(b []byte, h *RunHandle) ([]kv, error) {
	r := NewRunReader(bytes.NewReader(b), "test run", h)
	var out []kv
	for {
		k, v, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, kv{string(k), string(v)})
	}
}

func manyPairs(n int, value string) []kv {
	out := make([]kv, n)
	for i := range out {
		out[i] = kv{fmt.Sprintf("key-%08d", i), fmt.Sprintf("%s-%d", value, i)}
	}
	return out
}

func TestRunRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 3, 20_000} { // 20,000 pairs: many blocks
		b, h := writeRun(t, manyPairs(n, "v"))
		if h.Pairs != uint64(n) || h.Size != int64(len(b)) {
			t.Fatalf("%d pairs: handle %+v for %d bytes", n, h, len(b))
		}
		got, err := readRun(b, &h)
		if err != nil {
			t.Fatalf("%d pairs: %v", n, err)
		}
		if !slices.Equal(got, manyPairs(n, "v")) {
			t.Fatalf("%d pairs: read back %d pairs, not what was written", n, len(got))
		}
	}
	w := NewRunWriter(io.Discard)
	if err := w.Add([]byte("b"), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]byte("a"), nil); err == nil {
		t.Error("a key below the last one was taken")
	}
}

// Damage anywhere is a *CorruptError that says where; never a panic, never a silent short
// read.
func TestRunDamage(t *testing.T) {
	b, h := writeRun(t, manyPairs(5000, "v"))
	cases := map[string]struct {
		b []byte
		h *RunHandle
	}{
		"truncated mid-frame":      {b[:len(b)/2], nil},
		"truncated before the end": {b[:len(b)-12], nil}, // the end frame is 9+2 bytes
		"flipped byte":             {flip(b, len(b)/3), nil},
		"trailing bytes":           {append(slices.Clone(b), 0), nil},
		"another object":           {b, &RunHandle{Size: h.Size, CRC: h.CRC + 1, Pairs: h.Pairs}},
		"empty":                    {nil, nil},
	}
	for name, c := range cases {
		_, err := readRun(c.b, c.h)
		var corrupt *CorruptError
		if !errors.As(err, &corrupt) || corrupt.Where != "test run" {
			t.Errorf("%s: %v, want a *CorruptError of the run", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x40
	return c
}

// Merging a chain gives each key the value of the newest run that has it, in key order.
func TestMergeRuns(t *testing.T) {
	full, _ := writeRun(t, []kv{{"a", "1"}, {"b", "1"}, {"d", "1"}})
	d1, _ := writeRun(t, []kv{{"b", "2"}, {"c", "2"}})
	d2, _ := writeRun(t, []kv{{"a", "3"}, {"c", "3"}, {"e", "3"}})
	empty, _ := writeRun(t, nil)
	var runs []*RunReader
	for _, b := range [][]byte{full, d1, empty, d2} {
		runs = append(runs, NewRunReader(bytes.NewReader(b), "run", nil))
	}
	var got []kv
	err := MergeRuns(runs, func(k, v []byte) error {
		got = append(got, kv{string(k), string(v)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []kv{{"a", "3"}, {"b", "2"}, {"c", "3"}, {"d", "1"}, {"e", "3"}}
	if !slices.Equal(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
	bad := []*RunReader{NewRunReader(bytes.NewReader(full), "full", nil), NewRunReader(bytes.NewReader(d1[:len(d1)-3]), "cut", nil)}
	if err := MergeRuns(bad, func(k, v []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "cut") {
		t.Errorf("merging a cut run: %v, want its corruption", err)
	}
}

func TestRunHandleEncoding(t *testing.T) {
	h := RunHandle{Key: CheckpointObjectKey(42, "job~c~3.ab"), Size: 1 << 33, CRC: 0xdeadbeef, Pairs: 7}
	got, rest, err := CutRunHandle(append(AppendRunHandle(nil, h), 'x'))
	if err != nil || got != h || string(rest) != "x" {
		t.Fatalf("round trip: %+v, %q, %v", got, rest, err)
	}
	if n, ok := ObjectCheckpoint(h.Key); !ok || n != 42 {
		t.Errorf("checkpoint of %s: %d, %v", h.Key, n, ok)
	}
	if _, _, err := CutRunHandle(AppendRunHandle(nil, RunHandle{Key: "../x"})); err == nil {
		t.Error("a handle to ../x decoded")
	}
}

// A run comes from a store: any bytes give pairs or an error, never a panic, and what
// decodes is sorted.
func FuzzRunReader(f *testing.F) {
	b, _ := writeRun(f, manyPairs(40, "v"))
	f.Add(b)
	f.Add([]byte(runMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readRun(b, nil)
		var corrupt *CorruptError
		if err != nil && !errors.As(err, &corrupt) {
			t.Fatalf("error %v is not a *CorruptError", err)
		}
		for i := 1; i < len(got); i++ {
			if got[i-1].k >= got[i].k {
				t.Fatalf("keys out of order: %q then %q", got[i-1].k, got[i].k)
			}
		}
	})
}

func FuzzCutRunHandle(f *testing.F) {
	f.Add(AppendRunHandle(nil, RunHandle{Key: "chk-1/a", Size: 3, CRC: 1, Pairs: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := CutRunHandle(b)
		if err != nil {
			return
		}
		again, _, err := CutRunHandle(AppendRunHandle(nil, h))
		if err != nil || again != h || len(rest) > len(b) {
			t.Fatalf("%+v does not round-trip: %+v, %v", h, again, err)
		}
	})
}

func TestDirSnapshotObjects(t *testing.T) {
	s, err := OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	runObjectsContract(t, s)
}

// runObjectsContract checks what SnapshotObjects promises, on any store.
func runObjectsContract(t *testing.T, s interface {
	SnapshotObjects
	CheckpointStore
}) {
	ctx := context.Background()
	write := func(key string, pairs []kv) RunHandle {
		t.Helper()
		w, err := s.CreateObject(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		rw := NewRunWriter(w)
		for _, p := range pairs {
			if err := rw.Add([]byte(p.k), []byte(p.v)); err != nil {
				t.Fatal(err)
			}
		}
		h, err := rw.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		h.Key = key
		return h
	}
	list := func(prefix string) map[string]int64 {
		t.Helper()
		got := map[string]int64{}
		if err := s.ListObjects(ctx, prefix, func(k string, size int64) error { got[k] = size; return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	pairs := manyPairs(30_000, "x") // about 600 KB: several blocks and writes
	h := write(CheckpointObjectKey(3, "j~c~0.1"), pairs)
	write(CheckpointObjectKey(4, "j~c~0.2"), pairs[:2])
	write(SavepointObjectKey("before-upgrade", "j~c~0.3"), pairs[:1])

	// An aborted write leaves nothing.
	w, err := s.CreateObject(ctx, CheckpointObjectKey(5, "aborted"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	w.Abort()

	if got := list(""); len(got) != 3 || got[h.Key] != h.Size {
		t.Fatalf("objects %v, want 3 with %s of %d bytes", got, h.Key, h.Size)
	}
	if got := list("chk-"); len(got) != 2 {
		t.Fatalf("checkpoint objects %v, want 2", got)
	}
	r, err := s.OpenObject(ctx, h.Key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readRun(back, &h); err != nil || !slices.Equal(got, pairs) {
		t.Fatalf("read back %d pairs, %v", len(got), err)
	}
	if _, err := s.OpenObject(ctx, CheckpointObjectKey(5, "aborted")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open an aborted object: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateObject(ctx, "../escape"); err == nil {
		t.Fatal("created ../escape")
	}
	if err := s.DeleteObject(ctx, h.Key); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteObject(ctx, h.Key); err != nil {
		t.Fatalf("delete twice: %v", err)
	}
	// Deleting a savepoint deletes its objects.
	if err := s.WriteSavepoint(ctx, "before-upgrade", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSavepoint(ctx, "before-upgrade"); err != nil {
		t.Fatal(err)
	}
	if got := list(""); len(got) != 1 {
		t.Fatalf("after deletes: objects %v, want checkpoint 4's only", got)
	}
}

// Pairs larger than a block round-trip, and a large frame cut short is reported as such.
func TestRunLargePair(t *testing.T) {
	big := strings.Repeat("z", 3*runBlockSize)
	b, h := writeRun(t, []kv{{"a", "1"}, {"b", big}, {"c", "3"}})
	got, err := readRun(b, &h)
	if err != nil || len(got) != 3 || got[1].v != big {
		t.Fatalf("read back %d pairs, %v", len(got), err)
	}
	var corrupt *CorruptError
	if _, err := readRun(b[:len(b)-runBlockSize], nil); !errors.As(err, &corrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("a cut large frame: %v", err)
	}
}
