// Command genmodel writes the model of examples/score's tests: a linear model of 8 features
// to 3 outputs, y = x·W + b, with fixed weights, as ONNX.
//
//	go run ./examples/score/internal/genmodel examples/score/testdata/linear8x3.onnx
package main

import (
	"fmt"
	"os"

	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genmodel OUT.onnx")
		os.Exit(2)
	}
	const in, out = 8, 3
	w := make([][]float32, in)
	for i := range w {
		w[i] = make([]float32, out)
		for j := range w[i] {
			// Small, distinct, signed weights: every feature and output matters.
			w[i][j] = float32((i*out+j)%11-5) / 8
		}
	}
	b := []float32{0.5, -0.25, 1}
	data, err := onnxmodel.Linear(w, b, onnxmodel.Options{Version: 1, Name: "score-linear8x3"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
}
