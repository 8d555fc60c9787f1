package stream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestJSONLWriterBytes(t *testing.T) {
	type row struct {
		Name string  `json:"name"`
		N    int     `json:"n"`
		F    float64 `json:"f,omitempty"`
	}
	tests := []struct {
		name    string
		write   func(s Sink[any]) error
		want    string
		wantErr bool
	}{
		{"ints", func(s Sink[any]) error {
			return s.WriteBatch([]Record[any]{{Value: 1}, {Value: -2}, {Value: math.MaxInt64}})
		}, "1\n-2\n9223372036854775807\n", false},
		{"strings, no html escaping", func(s Sink[any]) error {
			return s.WriteBatch([]Record[any]{{Value: ""}, {Value: "a<b>&\"c\"\n"}, {Value: "世界"}})
		}, "\"\"\n\"a<b>&\\\"c\\\"\\n\"\n\"世界\"\n", false},
		{"structs and kvs", func(s Sink[any]) error {
			return s.WriteBatch([]Record[any]{{Value: row{"a", 1, 0}}, {Value: KV[string, int64]{"k", 3}}, {Value: nil}})
		}, "{\"name\":\"a\",\"n\":1}\n{\"key\":\"k\",\"value\":3}\nnull\n", false},
		{"several batches", func(s Sink[any]) error {
			if err := s.WriteBatch([]Record[any]{{Value: 1}}); err != nil {
				return err
			}
			if err := s.WriteBatch(nil); err != nil {
				return err
			}
			return s.WriteBatch([]Record[any]{{Value: 2}, {Value: 3}})
		}, "1\n2\n3\n", false},
		{"a value that does not encode writes nothing of its batch", func(s Sink[any]) error {
			if err := s.WriteBatch([]Record[any]{{Value: 1}}); err != nil {
				return err
			}
			return s.WriteBatch([]Record[any]{{Value: 2}, {Value: math.NaN()}, {Value: 3}})
		}, "1\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := JSONLWriterSink[any](&buf)
			err := tt.write(s)
			if (err != nil) != tt.wantErr {
				t.Fatalf("write error %v, want error %v", err, tt.wantErr)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJSONLWriterAfterClose(t *testing.T) {
	var buf bytes.Buffer
	s := JSONLWriterSink[int](&buf)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.WriteBatch([]Record[int]{{Value: 1}}); err == nil {
		t.Error("WriteBatch after Close: no error")
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q after Close", buf.String())
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestJSONLWriterWriteError(t *testing.T) {
	boom := errors.New("disk full")
	s := JSONLWriterSink[int](errWriter{boom})
	if err := s.WriteBatch([]Record[int]{{Value: 1}}); !errors.Is(err, boom) {
		t.Errorf("WriteBatch = %v, want the writer's error", err)
	}
}

// writeConcurrently writes batches values 0..writers*batches*per-1 to s from writers goroutines.
func writeConcurrently(t *testing.T, s Sink[int], writers, batches, per int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				recs := make([]Record[int], per)
				for i := range recs {
					recs[i].Value = (w*batches+b)*per + i
				}
				if err := s.WriteBatch(recs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkBatchesWhole checks that vs holds 0..n-1 once each and that every batch of per values
// is contiguous in vs.
func checkBatchesWhole(t *testing.T, vs []int, n, per int) {
	t.Helper()
	if len(vs) != n {
		t.Fatalf("got %d values, want %d", len(vs), n)
	}
	sorted := slices.Sorted(slices.Values(vs))
	for i, v := range sorted {
		if v != i {
			t.Fatalf("values are not 0..%d once each: sorted[%d] = %d", n-1, i, v)
		}
	}
	for i := 0; i < len(vs); i += per {
		for j := 1; j < per; j++ {
			if vs[i+j] != vs[i]+j {
				t.Fatalf("batch at %d is interleaved: %v", i, vs[i:i+per])
			}
		}
	}
}

func TestConcurrentWriteBatch(t *testing.T) {
	const writers, batches, per = 8, 200, 10
	const n = writers * batches * per

	t.Run("collect", func(t *testing.T) {
		c := NewCollectSink[int]()
		writeConcurrently(t, c, writers, batches, per)
		checkBatchesWhole(t, c.Values(), n, per)
		if c.Len() != n || len(c.Records()) != n {
			t.Errorf("Len %d, Records %d; want %d", c.Len(), len(c.Records()), n)
		}
	})
	t.Run("jsonl writer", func(t *testing.T) {
		var buf bytes.Buffer
		s := JSONLWriterSink[int](&buf)
		writeConcurrently(t, s, writers, batches, per)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkBatchesWhole(t, decodeLines[int](t, buf.String()), n, per)
	})
	t.Run("func", func(t *testing.T) {
		var vs []int // not locked: Func serialises calls
		s := FuncSink(func(recs []Record[int]) error {
			for _, r := range recs {
				vs = append(vs, r.Value)
			}
			return nil
		})
		writeConcurrently(t, s, writers, batches, per)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkBatchesWhole(t, vs, n, per)
	})
}

func decodeLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var vs []T
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestJSONLFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(path, []byte("old content that must go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := JSONLFileSink[event](path)
	if err != nil {
		t.Fatal(err)
	}
	want := []event{{1, "a"}, {2, "héllo\nworld"}, {3, ""}}
	if err := s.WriteBatch([]Record[event]{{Value: want[0]}, {Value: want[1]}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch([]Record[event]{{Value: want[2]}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Read back with the JSONL source.
	splits, err := JSONL[event](path).Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	out := readSplit(t, splits[0], 10)
	if got := out.values(); !slices.Equal(got, want) || len(out.dead) != 0 {
		t.Errorf("read back %v (dead letters %v), want %v", got, out.dead, want)
	}
}

func TestJSONLFileCreateError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "out.jsonl")
	_, err := JSONLFileSink[int](path)
	if err == nil {
		t.Fatal("JSONLFileSink in a missing directory: no error")
	}
	if !strings.Contains(err.Error(), path) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q: want it to name the path and wrap os.ErrNotExist", err)
	}
}

func TestFuncSink(t *testing.T) {
	boom := errors.New("boom")
	var got []string
	s := FuncSink(func(recs []Record[string]) error {
		for _, r := range recs {
			if r.Value == "bad" {
				return boom
			}
			got = append(got, r.Value)
		}
		return nil
	})
	if err := s.WriteBatch([]Record[string]{{Value: "a"}, {Value: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch([]Record[string]{{Value: "bad"}}); !errors.Is(err, boom) {
		t.Errorf("WriteBatch = %v, want f's error", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("f saw %q", got)
	}
	if err := FuncSink[int](nil).WriteBatch(nil); err == nil {
		t.Error("FuncSink(nil).WriteBatch: no error")
	}
}

func TestCollect(t *testing.T) {
	var c CollectSink[string] // the zero value is ready
	if c.Len() != 0 || len(c.Values()) != 0 || c.Closed() {
		t.Fatal("zero CollectSink is not empty and open")
	}
	batch := []Record[string]{{Value: "a", Time: 1}, {Value: "b", Kind: Retract}}
	if err := c.WriteBatch(batch); err != nil {
		t.Fatal(err)
	}
	batch[0].Value = "changed" // the sink must have copied the records
	if err := c.WriteBatch([]Record[string]{{Value: "c"}}); err != nil {
		t.Fatal(err)
	}
	if got := c.Values(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Values = %q", got)
	}
	recs := c.Records()
	if want := []Record[string]{{Value: "a", Time: 1}, {Value: "b", Kind: Retract}, {Value: "c"}}; !slices.Equal(recs, want) {
		t.Errorf("Records = %+v, want %+v", recs, want)
	}
	recs[0].Value = "changed" // Records returns a copy
	if c.Records()[0].Value != "a" {
		t.Error("changing what Records returned changed the sink")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !c.Closed() {
		t.Error("Closed = false after Close")
	}
	if err := c.WriteBatch([]Record[string]{{Value: "late"}}); err == nil {
		t.Error("WriteBatch after Close: no error")
	}
	if c.Len() != 3 {
		t.Errorf("Len = %d, want 3", c.Len())
	}
}

type upsertLog struct{ got [][]Upsert[string, int] }

func (u *upsertLog) WriteUpserts(b []Upsert[string, int]) error {
	u.got = append(u.got, append([]Upsert[string, int](nil), b...))
	return nil
}
func (u *upsertLog) Close() error { return nil }

// A changelog's retraction becomes a delete, an insert a put, in order.
func TestUpserts(t *testing.T) {
	log := &upsertLog{}
	s := UpsertSink[string, int](log)
	recs := []Record[KV[string, int]]{{Value: KV[string, int]{"a", 1}}, {Value: KV[string, int]{"a", 1}, Kind: Retract}, {Value: KV[string, int]{"b", 2}}}
	if err := s.WriteBatch(recs); err != nil {
		t.Fatal(err)
	}
	want := []Upsert[string, int]{{Key: "a", Value: 1}, {Key: "a", Value: 1, Delete: true}, {Key: "b", Value: 2}}
	if len(log.got) != 1 || !slices.Equal(log.got[0], want) {
		t.Errorf("upserts %v, want %v", log.got, want)
	}
}
