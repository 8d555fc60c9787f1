package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddyflow/eddy/stream/infer/onnxrt"
	"github.com/eddyflow/eddy/stream/infer/onnxrt/onnxrttest"
)

const modelPath = "testdata/linear8x3.onnx"

// input writes n lines: valid ones with random features, and every 10th line one of the
// invalid kinds. It returns the file and, per line, whether it is valid.
func input(t *testing.T, n int) (string, []bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(12, 34))
	bad := []string{
		``,
		`   `,
		`{"id":"x","features":[1,2,3,4,5,6,7,null]}`,
		`{"id":"x","features":[1,2,3,4,5,6,7,"8"]}`,
		`{"id":"x","features":[1,2,3,4,5,6,7,false]}`,
		`{"id":7,"features":[1,2,3,4,5,6,7,8]}`,
		`{"id":null,"features":[1,2,3,4,5,6,7,8]}`,
		`{"features":[1,2,3,4,5,6,7,8]}`,
		`{"id":"x"}`,
		`{"id":"x","features":null}`,
		`{"id":"x","features":[1,2,3,4,5,6,7]}`,
		`{"id":"x","features":[1,2,3,4,5,6,7,8,9]}`,
		`{"id":"x","features":[[1],2,3,4,5,6,7,8]}`,
		`{"id":"x","features":[1,2,3,4,5,6,7,8]`,
		`[1,2,3]`,
		`null`,
		`"x"`,
		`42`,
		`{"id":"x","features":[1,2,3,4,5,6,7,8]} {}`,
		`not json`,
	}
	var b strings.Builder
	valid := make([]bool, n)
	for i := range n {
		if i%10 == 9 {
			b.WriteString(bad[(i/10)%len(bad)])
		} else {
			valid[i] = true
			fs := make([]string, 8)
			for j := range fs {
				fs[j] = fmt.Sprint(float32(rng.NormFloat64() * 10))
			}
			fmt.Fprintf(&b, `{"id":"r%d","features":[%s]}`, i, strings.Join(fs, ","))
		}
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, valid
}

// runScore runs the program and returns its output file's lines and its stderr.
func runScore(t *testing.T, in string, args ...string) ([]result, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	var stderr bytes.Buffer
	code := run(context.Background(), append([]string{"-model", modelPath, "-in", in, "-out", out}, args...), &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var res []result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r result
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	return res, stderr.String()
}

func TestScoreContract(t *testing.T) {
	onnxrttest.Require(t)
	const n = 2000
	in, valid := input(t, n)
	// The reference: the runtime called directly, one row at a time.
	model, err := onnxrt.Open(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	lines, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var want []result
	for i, l := range strings.Split(strings.TrimSuffix(string(lines), "\n"), "\n") {
		if !valid[i] {
			continue
		}
		var req struct {
			ID       string    `json:"id"`
			Features []float32 `json:"features"`
		}
		if err := json.Unmarshal([]byte(l), &req); err != nil {
			t.Fatal(err)
		}
		got, err := model.Infer(context.Background(), [][]float32{req.Features})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, result{ID: req.ID, Output: got[0]})
	}

	var outputs [][]result
	for _, args := range [][]string{
		{"-batch", "1", "-concurrency", "1", "-max-delay", "0s"},
		{"-batch", "64", "-concurrency", "4", "-max-delay", "2ms"},
		{"-batch", "7", "-concurrency", "8", "-max-delay", "1ms"},
	} {
		got, stderr := runScore(t, in, args...)
		outputs = append(outputs, got)
		if len(got) != len(want) {
			t.Fatalf("%v: %d output lines, want %d", args, len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i].ID {
				t.Fatalf("%v: output %d is id %q, want %q: not in input order", args, i, got[i].ID, want[i].ID)
			}
			if len(got[i].Output) != 3 {
				t.Fatalf("%v: id %s: %d outputs, want 3", args, got[i].ID, len(got[i].Output))
			}
			for j := range got[i].Output {
				if d := math.Abs(float64(got[i].Output[j] - want[i].Output[j])); d > 1e-6 {
					t.Fatalf("%v: id %s output %d: %v, the runtime says %v", args, got[i].ID, j, got[i].Output[j], want[i].Output[j])
				}
			}
		}
		// Stderr: one line per dead letter, with its line number, then the count.
		var deadLines []string
		for i, ok := range valid {
			if !ok {
				deadLines = append(deadLines, fmt.Sprintf("line %d: ", i+1))
			}
		}
		errLines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if len(errLines) != len(deadLines)+1 || errLines[len(errLines)-1] != fmt.Sprintf("dead letters: %d", len(deadLines)) {
			t.Fatalf("%v: stderr has %d lines, last %q; want %d dead letters and the count", args, len(errLines), errLines[len(errLines)-1], len(deadLines))
		}
		for i, prefix := range deadLines {
			if !strings.HasPrefix(errLines[i], prefix) {
				t.Fatalf("%v: stderr line %d is %q, want it to start %q", args, i, errLines[i], prefix)
			}
		}
	}
	for i := range outputs[0] {
		for k := 1; k < len(outputs); k++ {
			if fmt.Sprint(outputs[0][i]) != fmt.Sprint(outputs[k][i]) {
				t.Fatalf("line %d: batch 1 gives %v, run %d gives %v", i, outputs[0][i], k, outputs[k][i])
			}
		}
	}
}

func TestScoreEdgeInputs(t *testing.T) {
	onnxrttest.Require(t)
	for _, tc := range []struct {
		name, input string
		ids         []string
		dead        []string
	}{
		{"empty file", "", nil, nil},
		{"no newline at the end", `{"id":"a","features":[1,2,3,4,5,6,7,8]}`, []string{"a"}, nil},
		{"crlf", "{\"id\":\"a\",\"features\":[1,2,3,4,5,6,7,8]}\r\n\r\n", []string{"a"}, []string{"line 2: blank line"}},
		{"too big for float32", `{"id":"a","features":[1e39,2,3,4,5,6,7,8]}` + "\n" + `{"id":"b","features":[1e400,2,3,4,5,6,7,8]}`, nil, []string{"line 1: ", "line 2: "}},
		{"only newlines", "\n\n", nil, []string{"line 1: blank line", "line 2: blank line"}},
		{"extra fields and unicode id", `{"id":"é\u00e9","features":[1,2,3,4,5,6,7,8],"x":null}`, []string{"éé"}, nil},
		{"a long line", `{"id":"long","pad":"` + strings.Repeat("x", 1<<20) + `","features":[1,2,3,4,5,6,7,8]}`, []string{"long"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(t.TempDir(), "in.jsonl")
			if err := os.WriteFile(in, []byte(tc.input), 0o644); err != nil {
				t.Fatal(err)
			}
			got, stderr := runScore(t, in, "-batch", "4")
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
				t.Errorf("ids %q, want %q", ids, tc.ids)
			}
			errLines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if last := errLines[len(errLines)-1]; last != fmt.Sprintf("dead letters: %d", len(tc.dead)) {
				t.Errorf("last stderr line %q, want %d dead letters; stderr %q", last, len(tc.dead), stderr)
			}
			for i, d := range tc.dead {
				if i >= len(errLines) || !strings.HasPrefix(errLines[i], d) {
					t.Errorf("stderr %q; want line %d to start %q", stderr, i, d)
				}
			}
		})
	}
}

func TestScoreBadUse(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no flags", nil, 2, "-model, -in and -out are required"},
		{"batch 0", []string{"-model", "m", "-in", "i", "-out", "o", "-batch", "0"}, 2, "-batch 0"},
		{"concurrency 0", []string{"-model", "m", "-in", "i", "-out", "o", "-concurrency", "0"}, 2, "-concurrency 0"},
		{"negative delay", []string{"-model", "m", "-in", "i", "-out", "o", "-max-delay", "-1s"}, 2, "-max-delay -1s"},
		{"missing model", []string{"-model", filepath.Join(dir, "none.onnx"), "-in", "i", "-out", "o"}, 1, "none.onnx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}
