package stream

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// collectOutput is an Output that keeps what it is given.
type collectOutput[T any] struct {
	recs []Record[T]
	dead []DeadLetter
}

func (o *collectOutput[T]) Emit(r Record[T])        { o.recs = append(o.recs, r) }
func (o *collectOutput[T]) DeadLetter(d DeadLetter) { o.dead = append(o.dead, d) }
func (o *collectOutput[T]) Watermark(int64)         {}

func (o *collectOutput[T]) values() []T {
	vs := make([]T, len(o.recs))
	for i, r := range o.recs {
		vs[i] = r.Value
	}
	return vs
}

// readSplit reads s to io.EOF in calls of at most max, checking that no call hands more than
// max records or hands any after io.EOF, and closes it.
func readSplit[T any](t *testing.T, s Split[T], max int) *collectOutput[T] {
	t.Helper()
	out := &collectOutput[T]{}
	for calls := 0; ; calls++ {
		if calls > 1_000_000 {
			t.Fatal("split never returned io.EOF")
		}
		before := len(out.recs)
		n, err := s.Read(context.Background(), max, out)
		if n < 0 || n > max {
			t.Fatalf("Read(max %d) = %d", max, n)
		}
		if got := len(out.recs) - before; got != n {
			t.Fatalf("Read returned %d but emitted %d", n, got)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	if n, err := s.Read(context.Background(), max, out); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("Read after io.EOF = %d, %v; want 0, io.EOF", n, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	return out
}

// readSource reads every split of src, in order, and returns the values of each split.
func readSource[T any](t *testing.T, src Source[T], n, max int) [][]T {
	t.Helper()
	splits, err := src.Splits(n)
	if err != nil {
		t.Fatalf("Splits(%d): %v", n, err)
	}
	var parts [][]T
	for _, s := range splits {
		parts = append(parts, readSplit(t, s, max).values())
	}
	return parts
}

func TestRangeSourcesSplitContiguously(t *testing.T) {
	sources := map[string]func(count int) Source[int]{
		"slice": func(count int) Source[int] {
			s := make([]int, count)
			for i := range s {
				s[i] = i
			}
			return Slice(s)
		},
		"generate": func(count int) Source[int] {
			return Generate(int64(count), func(i int64) int { return int(i) })
		},
	}
	for name, newSource := range sources {
		for _, count := range []int{0, 1, 7, 1000} {
			for n := 1; n <= 5; n++ {
				for _, batch := range []int{1, 3, 1000} {
					parts := readSource(t, newSource(count), n, batch)
					if len(parts) != n {
						t.Errorf("%s count %d: Splits(%d) gave %d splits", name, count, n, len(parts))
					}
					// Contiguous and in order: concatenated, the parts are 0..count-1.
					all := slices.Concat(parts...)
					if len(all) != count {
						t.Errorf("%s count %d n %d batch %d: read %d values", name, count, n, batch, len(all))
						continue
					}
					for i, v := range all {
						if v != i {
							t.Errorf("%s count %d n %d batch %d: value %d is %d", name, count, n, batch, i, v)
							break
						}
					}
					// Balanced: parts differ by at most one.
					lo, hi := count, 0
					for _, p := range parts {
						lo, hi = min(lo, len(p)), max(hi, len(p))
					}
					if hi-lo > 1 {
						t.Errorf("%s count %d n %d: part sizes from %d to %d", name, count, n, lo, hi)
					}
				}
			}
		}
	}
}

func TestRangeSplitReadRespectsMax(t *testing.T) {
	splits, err := Slice([]string{"a", "b", "c", "d", "e"}).Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	s, out := splits[0], &collectOutput[string]{}
	steps := []struct {
		max     int
		wantN   int
		wantEOF bool
	}{{2, 2, false}, {0, 0, false}, {2, 2, false}, {2, 1, true}, {2, 0, true}}
	for i, st := range steps {
		n, err := s.Read(context.Background(), st.max, out)
		if n != st.wantN || errors.Is(err, io.EOF) != st.wantEOF || (err != nil && !errors.Is(err, io.EOF)) {
			t.Errorf("read %d (max %d) = %d, %v; want %d, eof %v", i, st.max, n, err, st.wantN, st.wantEOF)
		}
	}
	if got := out.values(); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("values %q", got)
	}
}

func TestGenerateErrors(t *testing.T) {
	if _, err := Generate(-1, func(int64) int { return 0 }).Splits(1); err == nil {
		t.Error("Generate(-1): no error")
	}
	if _, err := Generate[int](3, nil).Splits(1); err == nil {
		t.Error("Generate with a nil function: no error")
	}
}

func TestChannelSource(t *testing.T) {
	if _, err := Channel[int](nil).Splits(1); err == nil {
		t.Error("Channel(nil): no error")
	}
	ch := make(chan int, 10)
	splits, err := Channel(ch).Splits(4)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 1 {
		t.Fatalf("Channel: %d splits, want 1", len(splits))
	}
	s, out := splits[0], &collectOutput[int]{}
	ctx := context.Background()

	// Nothing ready: (0, nil) after a short wait.
	start := time.Now()
	if n, err := s.Read(ctx, 10, out); n != 0 || err != nil {
		t.Fatalf("Read on an empty channel = %d, %v; want 0, nil", n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Read on an empty channel waited %s", d)
	}

	for i := range 5 {
		ch <- i
	}
	if n, err := s.Read(ctx, 3, out); n != 3 || err != nil {
		t.Fatalf("Read(3) = %d, %v; want 3, nil", n, err)
	}
	close(ch)
	if n, err := s.Read(ctx, 10, out); n != 2 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read to the end = %d, %v; want 2, io.EOF", n, err)
	}
	if n, err := s.Read(ctx, 10, out); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
	if got := out.values(); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Errorf("values %v", got)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func TestChannelSourceContextDone(t *testing.T) {
	splits, err := Channel(make(chan int)).Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := splits[0].Read(ctx, 10, &collectOutput[int]{})
	// With ctx done and the wait possibly over at once, either answer is allowed.
	if n != 0 || (err != nil && !errors.Is(err, context.Canceled)) {
		t.Errorf("Read with a cancelled context = %d, %v", n, err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLines(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"empty file", "", nil},
		{"one newline", "\n", []string{""}},
		{"lf", "a\nb\nc\n", []string{"a", "b", "c"}},
		{"crlf", "a\r\nb\r\nc\r\n", []string{"a", "b", "c"}},
		{"mixed endings", "a\r\nb\nc\r\n", []string{"a", "b", "c"}},
		{"last line without newline", "a\nb", []string{"a", "b"}},
		{"last crlf line without newline", "a\r\nb", []string{"a", "b"}},
		{"blank lines kept", "a\n\n\nb\n", []string{"a", "", "", "b"}},
		{"lone cr stays", "a\rb\nc\r", []string{"a\rb", "c\r"}},
		{"1 MiB line", "x\n" + long + "\ny", []string{"x", long, "y"}},
		{"1 MiB line crlf, last", long + "\r\n", []string{long}},
		{"utf-8", "héllo\n世界\nПривет\nمرحبا\n🙂👍🏽\n", []string{"héllo", "世界", "Привет", "مرحبا", "🙂👍🏽"}},
		{"invalid utf-8 passed through", "a\xff\xfeb\n\xc3\n", []string{"a\xff\xfeb", "\xc3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			for _, n := range []int{1, 4} {
				for _, max := range []int{1, 2, 100} {
					parts := readSource(t, Lines(path), n, max)
					if len(parts) != 1 {
						t.Fatalf("Splits(%d) gave %d splits, want 1", n, len(parts))
					}
					if !slices.Equal(parts[0], tt.want) {
						t.Errorf("n %d max %d: lines %s, want %s", n, max, abbrev(parts[0]), abbrev(tt.want))
					}
				}
			}
			// LinesFrom reads the same.
			parts := readSource(t, LinesFrom("test", strings.NewReader(tt.content)), 1, 3)
			if !slices.Equal(parts[0], tt.want) {
				t.Errorf("LinesFrom: lines %s, want %s", abbrev(parts[0]), abbrev(tt.want))
			}
		})
	}
}

// abbrev shortens long lines for messages.
func abbrev(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 40 {
			l = l[:40] + "…"
		}
		out[i] = l
	}
	return out
}

func TestLineSplitReadRespectsMax(t *testing.T) {
	s := newLineSplit("test", strings.NewReader("a\nb\nc\nd\ne"), nil)
	out := &collectOutput[string]{}
	steps := []struct {
		max     int
		wantN   int
		wantEOF bool
	}{{2, 2, false}, {0, 0, false}, {2, 2, false}, {2, 1, true}, {2, 0, true}}
	for i, st := range steps {
		n, err := s.Read(context.Background(), st.max, out)
		if n != st.wantN || errors.Is(err, io.EOF) != st.wantEOF || (err != nil && !errors.Is(err, io.EOF)) {
			t.Errorf("read %d (max %d) = %d, %v; want %d, eof %v", i, st.max, n, err, st.wantN, st.wantEOF)
		}
	}
	if got := out.values(); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("values %q", got)
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestLinesReadError(t *testing.T) {
	boom := errors.New("boom")
	splits, err := LinesFrom("flaky", &failingReader{data: "a\nb\npartial", err: boom}).Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	out := &collectOutput[string]{}
	n, err := splits[0].Read(context.Background(), 10, out)
	if n != 2 || !errors.Is(err, boom) {
		t.Fatalf("Read = %d, %v; want 2 and the reader's error", n, err)
	}
	if !strings.Contains(err.Error(), "flaky") {
		t.Errorf("error %q does not name the source", err)
	}
}

func TestLinesFromReadsOnce(t *testing.T) {
	src := LinesFrom("stdin", strings.NewReader("a\n"))
	if _, err := src.Splits(1); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Splits(1); err == nil {
		t.Error("second Splits of LinesFrom: no error")
	}
	if _, err := LinesFrom("nil", nil).Splits(1); err == nil {
		t.Error("LinesFrom with a nil reader: no error")
	}
}

func TestFileSourcesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-file.txt")
	for name, splits := range map[string]func() error{
		"Lines": func() error { _, err := Lines(path).Splits(1); return err },
		"JSONL": func() error { _, err := JSONL[int](path).Splits(1); return err },
	} {
		err := splits()
		if err == nil {
			t.Errorf("%s of a missing file: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name %s", name, err, path)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: error %q does not wrap fs.ErrNotExist", name, err)
		}
	}
}

type event struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func TestJSONL(t *testing.T) {
	long := strings.Repeat("é", 1<<19) // 1 MiB of UTF-8
	content := strings.Join([]string{
		`{"id":1,"name":"a"}`,            // 1
		``,                               // 2: skipped
		`{"id":2,"name":"b","extra":[]}`, // 3: unknown field allowed
		`not json`,                       // 4: malformed
		`   `,                            // 5: skipped
		`{"id":"three"}`,                 // 6: wrong type
		`{"id":4} trailing`,              // 7: trailing garbage
		`{"name":"missing id"}`,          // 8: missing field: zero value
		"\t{\"id\":5,\"name\":\"世界\"}\r", // 9: CRLF, surrounding blanks
		`{"id":6,"name":"` + long + `"}`, // 10: 1 MiB line
		`[1,2]`,                          // 11: wrong type
		`{"id":7}`,                       // 12: last, no newline
	}, "\n")
	path := writeFile(t, content)
	want := []event{{1, "a"}, {2, "b"}, {0, "missing id"}, {5, "世界"}, {6, long}, {7, ""}}
	wantDead := []struct {
		pos  int64
		line string
	}{{4, "not json"}, {6, `{"id":"three"}`}, {7, `{"id":4} trailing`}, {11, "[1,2]"}}

	for _, max := range []int{1, 2, 100} {
		splits, err := JSONL[event](path).Splits(3)
		if err != nil {
			t.Fatal(err)
		}
		if len(splits) != 1 {
			t.Fatalf("Splits(3) gave %d splits, want 1", len(splits))
		}
		out := readSplit(t, splits[0], max)
		if got := out.values(); !slices.Equal(got, want) {
			t.Errorf("max %d: values %v, want %v", max, abbrevEvents(got), abbrevEvents(want))
		}
		if len(out.dead) != len(wantDead) {
			t.Fatalf("max %d: %d dead letters, want %d: %v", max, len(out.dead), len(wantDead), out.dead)
		}
		for i, d := range out.dead {
			w := wantDead[i]
			if d.Stage != "jsonl "+path || d.Position != w.pos || d.Value != w.line || d.Reason == "" {
				t.Errorf("dead letter %d = %+v, want stage %q, position %d, value %q and a reason", i, d, "jsonl "+path, w.pos, w.line)
			}
		}
	}
}

func abbrevEvents(es []event) []event {
	out := slices.Clone(es)
	for i := range out {
		if len(out[i].Name) > 20 {
			out[i].Name = out[i].Name[:20] + "…"
		}
	}
	return out
}

func TestJSONLOnlyMalformed(t *testing.T) {
	path := writeFile(t, "x\ny\n\nz")
	splits, err := JSONL[event](path).Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	out := readSplit(t, splits[0], 10)
	if len(out.recs) != 0 {
		t.Errorf("records %v, want none", out.recs)
	}
	var pos []int64
	for _, d := range out.dead {
		pos = append(pos, d.Position)
	}
	if !slices.Equal(pos, []int64{1, 2, 4}) {
		t.Errorf("dead letters at lines %v, want [1 2 4]", pos)
	}
}

func TestJSONLScalars(t *testing.T) {
	path := writeFile(t, "1\n2.5\n\"s\"\nnull\n-4\n")
	splits, err := JSONL[int](path).Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	out := readSplit(t, splits[0], 10)
	if got := out.values(); !slices.Equal(got, []int{1, 0, -4}) {
		t.Errorf("values %v, want [1 0 -4] (null is the zero value)", got)
	}
	if len(out.dead) != 2 || out.dead[0].Position != 2 || out.dead[1].Position != 3 {
		t.Errorf("dead letters %v, want lines 2 and 3", out.dead)
	}
}
