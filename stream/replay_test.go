package stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readN reads from s until it has handed out n records or reached the end.
func readN[T any](t *testing.T, s Split[T], n int, out *collectOutput[T]) {
	t.Helper()
	for len(out.recs) < n {
		got, err := s.Read(context.Background(), min(3, n-len(out.recs)), out)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if got == 0 {
			t.Fatal("Read handed nothing before the end")
		}
	}
}

func firstSplit[T any](t *testing.T, src Source[T]) Split[T] {
	t.Helper()
	splits, err := src.Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	return splits[0]
}

func offsetOf(t *testing.T, s any) []byte {
	t.Helper()
	r, ok := s.(replayable)
	if !ok {
		t.Fatalf("%T cannot rewind", s)
	}
	off, err := r.Offset()
	if err != nil {
		t.Fatalf("Offset: %v", err)
	}
	return off
}

const replayJSONL = "{\"a\":1}\n\n  \nnot json\r\n{\"a\":2}\r\n{\"a\":3}\n{\"a\":\n{\"a\":4}\n\n{\"a\":5}"

type replayValue struct {
	A int `json:"a"`
}

// TestLinesReplay reads k lines, takes the offset, reads the rest, then seeks a fresh split
// to the offset and reads again: the same lines.
func TestLinesReplay(t *testing.T) {
	contents := map[string]string{
		"lf":               "a\nb\n\nc\nd\n",
		"crlf, no last lf": "a\r\nb\r\nlone\rcr\r\n\r\nd",
		"jsonl text":       replayJSONL,
		"empty":            "",
	}
	for name, content := range contents {
		path := writeFile(t, content)
		all := readSplit(t, firstSplit(t, Lines(path)), 100).values()
		for k := 0; k <= len(all); k++ {
			s := firstSplit(t, Lines(path))
			out := &collectOutput[string]{}
			readN(t, s, k, out)
			off := offsetOf(t, s)
			rest := readSplit(t, s, 2).values()
			if got := append(out.values(), rest...); !slices.Equal(got, all) {
				t.Fatalf("%s: read %q, want %q", name, got, all)
			}

			fresh := firstSplit(t, Lines(path))
			if err := fresh.(replayable).Seek(off); err != nil {
				t.Fatalf("%s k %d: Seek: %v", name, k, err)
			}
			if again := offsetOf(t, fresh); !bytes.Equal(again, off) {
				t.Errorf("%s k %d: Offset after Seek %x, want %x", name, k, again, off)
			}
			if replay := readSplit(t, fresh, 2).values(); !slices.Equal(replay, rest) {
				t.Errorf("%s k %d: after Seek read %q, want %q", name, k, replay, rest)
			}
		}
	}
}

func TestJSONLReplayKeepsLineNumbers(t *testing.T) {
	path := writeFile(t, replayJSONL)
	whole := readSplit(t, firstSplit(t, JSONL[replayValue](path)), 100)
	if len(whole.recs) != 5 || len(whole.dead) != 2 {
		t.Fatalf("read %d records, %d dead letters; want 5, 2", len(whole.recs), len(whole.dead))
	}
	for k := 0; k <= len(whole.recs); k++ {
		s := firstSplit(t, JSONL[replayValue](path))
		first := &collectOutput[replayValue]{}
		readN(t, s, k, first)
		off := offsetOf(t, s)
		rest := readSplit(t, s, 1)

		fresh := firstSplit(t, JSONL[replayValue](path))
		if err := fresh.(replayable).Seek(off); err != nil {
			t.Fatalf("k %d: Seek: %v", k, err)
		}
		replay := readSplit(t, fresh, 1)
		if !slices.Equal(replay.values(), rest.values()) {
			t.Errorf("k %d: after Seek %v, want %v", k, replay.values(), rest.values())
		}
		if !slices.Equal(replay.dead, rest.dead) {
			t.Errorf("k %d: dead letters after Seek %v, want %v", k, replay.dead, rest.dead)
		}
		// Together, the dead letters are those of a whole read, with the same line numbers.
		if got := append(first.dead, replay.dead...); !slices.Equal(got, whole.dead) {
			t.Errorf("k %d: dead letters %v, want %v", k, got, whole.dead)
		}
	}
	if whole.dead[0].Position != 4 || whole.dead[1].Position != 7 {
		t.Errorf("dead letters at lines %d, %d; want 4, 7", whole.dead[0].Position, whole.dead[1].Position)
	}
}

// TestLineSeekRewinds seeks a split back after reading it to the end.
func TestLineSeekRewinds(t *testing.T) {
	path := writeFile(t, "a\nb\nc\n")
	s := firstSplit(t, Lines(path))
	start := offsetOf(t, s)
	out := &collectOutput[string]{}
	readN(t, s, 10, out)
	if n, err := s.Read(context.Background(), 1, out); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read at the end = %d, %v", n, err)
	}
	if err := s.(replayable).Seek(start); err != nil {
		t.Fatal(err)
	}
	if got := readSplit(t, s, 10).values(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("after rewinding: %q", got)
	}
	// Closed: Seek is an error, not a panic.
	if err := s.(replayable).Seek(start); err == nil {
		t.Error("Seek after Close: no error")
	}
}

func TestRangeReplay(t *testing.T) {
	src := Generate(100, func(i int64) int64 { return i })
	for _, n := range []int{1, 3} {
		for _, k := range []int{0, 1, 10, 33, 34} {
			splits, err := src.Splits(n)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := src.Splits(n)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range splits {
				out := &collectOutput[int64]{}
				readN(t, s, k, out)
				off := offsetOf(t, s)
				rest := readSplit(t, s, 7).values()
				if err := fresh[i].(replayable).Seek(off); err != nil {
					t.Fatalf("n %d split %d k %d: Seek: %v", n, i, k, err)
				}
				if got := readSplit(t, fresh[i], 7).values(); !slices.Equal(got, rest) {
					t.Errorf("n %d split %d k %d: after Seek %v, want %v", n, i, k, got, rest)
				}
			}
		}
	}
	// The appender path moves the offset too.
	s := firstSplit(t, Slice([]string{"a", "b", "c"}))
	recs, err := s.(interface {
		Append(context.Context, []Record[string], int) ([]Record[string], error)
	}).Append(context.Background(), nil, 2)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Append = %v, %v", recs, err)
	}
	fresh := firstSplit(t, Slice([]string{"a", "b", "c"}))
	if err := fresh.(replayable).Seek(offsetOf(t, s)); err != nil {
		t.Fatal(err)
	}
	if got := readSplit(t, fresh, 5).values(); !slices.Equal(got, []string{"c"}) {
		t.Errorf("after Append and Seek: %q", got)
	}
}

func TestNotReplayable(t *testing.T) {
	if _, ok := firstSplit(t, Channel(make(chan int))).(replayable); ok {
		t.Error("a Channel split is replayable")
	}
	if _, ok := firstSplit(t, LinesFrom("r", strings.NewReader("a\n"))).(replayable); ok {
		t.Error("a LinesFrom split is replayable")
	}
}

func lineOffset(pos, line int64) []byte  { return encodeOffset(offsetKindLine, pos, line) }
func rangeOffset(next, end int64) []byte { return encodeOffset(offsetKindRange, next, end) }

func TestSeekBadOffsets(t *testing.T) {
	path := writeFile(t, "ab\ncd\nef") // 8 bytes, lines start at 0, 3, 6
	good := lineOffset(3, 2)
	badVersion := slices.Clone(good)
	badVersion[0] = 2
	lineTests := []struct {
		name string
		off  []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version only", []byte{offsetVersion}},
		{"wrong version", badVersion},
		{"truncated", good[:offsetLen-1]},
		{"trailing bytes", append(slices.Clone(good), 0)},
		{"range offset", rangeOffset(1, 3)},
		{"negative byte offset", lineOffset(-1, 1)},
		{"beyond the end", lineOffset(9, 3)},
		{"far beyond the end", lineOffset(1<<62, 3)},
		{"not at a line start", lineOffset(4, 2)},
		{"line number 0", lineOffset(0, 0)},
		{"negative line number", lineOffset(3, -5)},
		{"line number too large", lineOffset(3, 5)},
	}
	for _, tt := range lineTests {
		for _, src := range []struct {
			name string
			s    Split[string]
		}{{"lines", firstSplit(t, Lines(path))}, {"jsonl", firstSplit(t, JSONL[string](path))}} {
			if err := src.s.(replayable).Seek(tt.off); err == nil {
				t.Errorf("%s: Seek(%s) = nil, want an error", src.name, tt.name)
			}
			// A failed Seek leaves the split where it was.
			if got := offsetOf(t, src.s); !bytes.Equal(got, lineOffset(0, 1)) {
				t.Errorf("%s: after a failed Seek(%s), offset %x", src.name, tt.name, got)
			}
			_ = src.s.Close()
		}
	}
	// Good ones, for contrast: a line start, the end of a file without a final newline.
	for _, off := range [][]byte{lineOffset(0, 1), good, lineOffset(6, 3), lineOffset(8, 4)} {
		s := firstSplit(t, Lines(path))
		if err := s.(replayable).Seek(off); err != nil {
			t.Errorf("Seek(%x): %v", off, err)
		}
		_ = s.Close()
	}

	rangeTests := []struct {
		name string
		off  []byte
	}{
		{"nil", nil},
		{"truncated", rangeOffset(1, 5)[:10]},
		{"line offset", lineOffset(0, 1)},
		{"another split's end", rangeOffset(1, 4)},
		{"beyond the end", rangeOffset(6, 5)},
		{"negative", rangeOffset(-1, 5)},
	}
	for _, tt := range rangeTests {
		s := firstSplit(t, Slice([]int{0, 1, 2, 3, 4}))
		if err := s.(replayable).Seek(tt.off); err == nil {
			t.Errorf("range: Seek(%s) = nil, want an error", tt.name)
		}
	}
}

// FuzzSeekOffset: whatever the bytes, Seek returns an error or succeeds, never panics; after
// a successful Seek, Offset returns the same bytes and reading works.
func FuzzSeekOffset(f *testing.F) {
	for _, off := range [][]byte{
		lineOffset(0, 1), lineOffset(8, 2), lineOffset(17, 4), lineOffset(-1, 1),
		rangeOffset(3, 10), rangeOffset(0, 10), nil, {1}, {1, 'L'}, {0xff},
	} {
		f.Add(off)
	}
	path := filepath.Join(f.TempDir(), "input.jsonl")
	if err := os.WriteFile(path, []byte(replayJSONL), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, off []byte) {
		lines := firstSplit(t, Lines(path))
		jsonl := firstSplit(t, JSONL[replayValue](path))
		rng := firstSplit(t, Generate(10, func(i int64) int64 { return i }))
		if err := lines.(replayable).Seek(off); err == nil {
			if got := offsetOf(t, lines); !bytes.Equal(got, off) {
				t.Errorf("Offset after Seek(%x) = %x", off, got)
			}
			readSplit(t, lines, 3)
		} else {
			_ = lines.Close()
		}
		if err := jsonl.(replayable).Seek(off); err == nil {
			readSplit(t, jsonl, 3)
		} else {
			_ = jsonl.Close()
		}
		if err := rng.(replayable).Seek(off); err == nil {
			if got := offsetOf(t, rng); !bytes.Equal(got, off) {
				t.Errorf("range Offset after Seek(%x) = %x", off, got)
			}
			readSplit(t, rng, 3)
		}
		_, _, _ = decodeOffset(off, offsetKindLine)
	})
}
