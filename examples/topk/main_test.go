package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the 10M-line test run the program in a process of its own, so that the
// heap it reports is the program's alone.
func TestMain(m *testing.M) {
	if os.Getenv("TOPK_RUN_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

type line struct {
	Item     *string `json:"item"`
	Count    uint64  `json:"count"`
	Distinct *uint64 `json:"distinct"`
}

// parse reads the program's output: the items, then the distinct count.
func parse(t *testing.T, out string) (items []line, distinct uint64) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		if i == len(lines)-1 {
			if v.Distinct == nil {
				t.Fatalf("last line %q: no distinct count", l)
			}
			return items, *v.Distinct
		}
		if v.Item == nil {
			t.Fatalf("line %d %q: no item", i+1, l)
		}
		items = append(items, v)
	}
	return nil, 0
}

type counted struct {
	item  string
	count uint64
}

// exactTop returns the k most frequent of counts, highest first, ties by item.
func exactTop(counts map[string]uint64, k int) []counted {
	var all []counted
	for it, c := range counts {
		all = append(all, counted{it, c})
	}
	slices.SortFunc(all, func(a, b counted) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return cmp.Compare(a.item, b.item)
	})
	return all[:min(k, len(all))]
}

func checkTop(t *testing.T, got []line, want []counted) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d", len(got), len(want))
	}
	for i := range want {
		if *got[i].Item != want[i].item || got[i].Count != want[i].count {
			t.Errorf("rank %d: got %q × %d, want %q × %d", i+1, *got[i].Item, got[i].Count, want[i].item, want[i].count)
		}
	}
}

func runProgram(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

// A small skewed file, with empty lines and CRLF endings, against an exact count.
func TestSmallInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.1, 1, 5000)
	counts := map[string]uint64{}
	var b strings.Builder
	for i := range 100_000 {
		it := "w" + strconv.FormatUint(z.Uint64(), 10)
		counts[it]++
		b.WriteString(it)
		switch i % 50 {
		case 0:
			b.WriteString("\n\n") // an empty line
		case 1:
			b.WriteString("\r\n")
		default:
			b.WriteString("\n")
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{1, 10, 25} {
		out, errOut, code := runProgram(t, "-in", path, "-k", strconv.Itoa(k), "-parallelism", "3")
		if code != 0 {
			t.Fatalf("-k %d: exit %d: %s", k, code, errOut)
		}
		items, distinct := parse(t, out)
		checkTop(t, items, exactTop(counts, k))
		if d, n := float64(distinct), float64(len(counts)); d < 0.98*n || d > 1.02*n {
			t.Errorf("-k %d: distinct %d, exact %d", k, distinct, len(counts))
		}
		if !strings.Contains(errOut, "peak_heap_bytes ") {
			t.Errorf("no peak_heap_bytes on stderr: %q", errOut)
		}
	}
}

// Fewer distinct items than k: all of them, and the default k of 10.
func TestFewItems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte("b\na\nb\n\nc\nb\na"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runProgram(t, "-in", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `{"item":"b","count":3}
{"item":"a","count":2}
{"item":"c","count":1}
{"distinct":3}
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	// An empty file: no items, zero distinct.
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	if out, _, code := runProgram(t, "-in", empty); code != 0 || out != "{\"distinct\":0}\n" {
		t.Errorf("empty file: exit %d, output %q", code, out)
	}
}

func TestErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.txt")
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing file", []string{"-in", missing}, 1, "open " + missing + ": no such file or directory"},
		{"no -in", nil, 2, "-in is required"},
		{"bad k", []string{"-in", missing, "-k", "0"}, 2, "-k 0: want at least 1"},
		{"parallelism 1", []string{"-in", missing, "-parallelism", "1"}, 2, "-parallelism 1: want at least 2"},
		{"capacity below k", []string{"-in", missing, "-k", "20", "-capacity", "5"}, 2, "-capacity 5: want at least k (20)"},
		{"unknown flag", []string{"-nope"}, 2, "flag provided but not defined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runProgram(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) || out != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit %d and %q", code, errOut, out, tt.code, tt.want)
			}
		})
	}
}
