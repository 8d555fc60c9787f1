package onnxrt_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
	"github.com/eddyflow/eddy/stream/infer/onnxrt"
	"github.com/eddyflow/eddy/stream/infer/onnxrt/onnxrttest"
)

func weights(in, out int) ([][]float32, []float32) {
	w := make([][]float32, in)
	for i := range w {
		w[i] = make([]float32, out)
		for j := range w[i] {
			w[i][j] = float32(i+1)*0.25 - float32(j)*0.5
		}
	}
	b := make([]float32, out)
	for j := range b {
		b[j] = float32(j) - 0.5
	}
	return w, b
}

// reference computes the model in float64.
func reference(w [][]float32, b []float32, row []float32, sigmoid bool) []float64 {
	out := make([]float64, len(b))
	for j := range out {
		s := float64(b[j])
		for i, x := range row {
			s += float64(x) * float64(w[i][j])
		}
		if sigmoid {
			s = 1 / (1 + math.Exp(-s))
		}
		out[j] = s
	}
	return out
}

func TestModels(t *testing.T) {
	onnxrttest.Require(t)
	for _, tc := range []struct {
		name    string
		sigmoid bool
		in, out int
	}{
		{"linear 4x2", false, 4, 2},
		{"logistic 8x1", true, 8, 1},
		{"linear 1x5", false, 1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, b := weights(tc.in, tc.out)
			build := onnxmodel.Linear
			if tc.sigmoid {
				build = onnxmodel.Logistic
			}
			data, err := build(w, b, onnxmodel.Options{Version: 3})
			if err != nil {
				t.Fatal(err)
			}
			m, err := onnxrt.Load(data)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.InputWidth() != tc.in || m.OutputWidth() != tc.out {
				t.Fatalf("widths %d -> %d, want %d -> %d", m.InputWidth(), m.OutputWidth(), tc.in, tc.out)
			}
			for _, n := range []int{1, 7, 64} {
				rows := make([][]float32, n)
				for r := range rows {
					rows[r] = make([]float32, tc.in)
					for i := range rows[r] {
						rows[r][i] = float32(r-i) / 3
					}
				}
				got, err := m.Infer(context.Background(), rows)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != n {
					t.Fatalf("%d rows out for %d", len(got), n)
				}
				for r := range rows {
					want := reference(w, b, rows[r], tc.sigmoid)
					for j := range want {
						if d := math.Abs(float64(got[r][j]) - want[j]); d > 1e-5 {
							t.Fatalf("row %d out %d: %v, want %v", r, j, got[r][j], want[j])
						}
					}
				}
			}
		})
	}
}

func TestModelErrors(t *testing.T) {
	onnxrttest.Require(t)
	w, b := weights(3, 1)
	data, err := onnxmodel.Linear(w, b, onnxmodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxrt.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Infer(context.Background(), [][]float32{{1, 2, 3}, {1, 2}})
	if err == nil || !infer.IsPermanent(err) || !strings.Contains(err.Error(), "row 1 has 2 values; the model takes 3") {
		t.Errorf("a short row: %v; want a permanent error saying so", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := m.Infer(ctx, [][]float32{{1, 2, 3}}); err == nil {
		t.Error("a run with its context done succeeded")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := m.Infer(context.Background(), [][]float32{{1, 2, 3}}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Infer after Close: %v", err)
	}
	if _, err := onnxrt.Load([]byte("not a model")); err == nil {
		t.Error("garbage loaded as a model")
	}
	if _, err := onnxrt.Open("/nonexistent/model.onnx"); err == nil {
		t.Error("a missing file opened")
	}
}
