package onnxmodel_test

import (
	"strings"
	"testing"

	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
)

// The models themselves run in onnxrt's tests, against ONNX Runtime; these are the shapes
// the writer refuses.
func TestLinearRejectsBadShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    [][]float32
		b    []float32
		want string
	}{
		{"no weights", nil, nil, "weights are empty"},
		{"ragged", [][]float32{{1, 2}, {3}}, []float32{0, 0}, "weight row 1 has 1 values, row 0 has 2"},
		{"short bias", [][]float32{{1, 2}}, []float32{0}, "bias has 1 values for 2 outputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := onnxmodel.Linear(tc.w, tc.b, onnxmodel.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want %q", err, tc.want)
			}
		})
	}
	b, err := onnxmodel.Logistic([][]float32{{1}}, []float32{0}, onnxmodel.Options{Version: 2, Name: "tiny"})
	if err != nil || len(b) == 0 {
		t.Fatalf("a 1x1 model: %d bytes, %v", len(b), err)
	}
}
