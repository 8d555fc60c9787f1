package onnxrt_test

import (
	"context"
	"math"
	"testing"

	"github.com/eddyflow/eddy/stream/infer/online"
	"github.com/eddyflow/eddy/stream/infer/onnxrt"
	"github.com/eddyflow/eddy/stream/infer/onnxrt/onnxrttest"
)

// Weights learned online, exported as ONNX and loaded in ONNX Runtime, score as the
// learner does.
func TestOnlineLogisticAsONNX(t *testing.T) {
	onnxrttest.Require(t)
	l := online.NewLogistic(3, 0.1)
	rows := [][]float32{{1, 0, 2}, {-1, 3, 0.5}, {0.2, -0.7, 1}, {2, 2, -2}}
	for i := range 500 {
		r := rows[i%len(rows)]
		if err := l.Update(r, r[0]-r[1] > 0); err != nil {
			t.Fatal(err)
		}
	}
	data, err := l.ONNX(7)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxrt.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := m.Infer(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if d := math.Abs(float64(got[i][0]) - l.Predict(r)); d > 1e-6 {
			t.Errorf("row %d: ONNX %v, learner %v", i, got[i][0], l.Predict(r))
		}
	}
}
