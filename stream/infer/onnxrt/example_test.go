package onnxrt_test

import (
	"context"
	"fmt"

	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
	"github.com/eddyflow/eddy/stream/infer/onnxrt"
)

// Load a model (here one written on the spot: y = 2·x0 + x1 + 1) and score two rows. It
// needs the ONNX Runtime library (bash .ci/install-onnxruntime.sh), so it is compiled, not
// run, by go test.
func ExampleLoad() {
	data, err := onnxmodel.Linear([][]float32{{2}, {1}}, []float32{1}, onnxmodel.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := onnxrt.Load(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	out, err := m.Infer(context.Background(), [][]float32{{1, 1}, {0, 5}})
	fmt.Println(out, err)
}
