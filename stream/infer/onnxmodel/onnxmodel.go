// Package onnxmodel writes small models as ONNX files: a linear (affine) model and a
// logistic one, y = x·W + b and y = sigmoid(x·W + b). They are what tests, benchmarks and
// online learning need (a model version made from weights learned in the stream), written
// straight as the ONNX protobuf with no ONNX tooling.
//
//	b, err := onnxmodel.Linear(w, bias, onnxmodel.Options{})
//	os.WriteFile("model.onnx", b, 0o644)
//
// The model has one input "features", float32 [batch, in], and one output "scores",
// float32 [batch, out], batch being a symbolic dimension.
package onnxmodel

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Options are what a model says about itself.
type Options struct {
	// Version is the model's version (ModelProto.model_version); 0 leaves it out.
	Version int64
	// Name is the graph's name; "" is "linear" or "logistic".
	Name string
}

// Input and output names of the models.
const (
	InputName  = "features"
	OutputName = "scores"
)

// Linear returns the ONNX model y = x·W + b, with W of shape [len(w), len(w[0])] (rows are
// inputs, columns outputs) and b of length len(w[0]).
func Linear(w [][]float32, b []float32, o Options) ([]byte, error) {
	return build(w, b, false, o)
}

// Logistic returns the ONNX model y = sigmoid(x·W + b).
func Logistic(w [][]float32, b []float32, o Options) ([]byte, error) {
	return build(w, b, true, o)
}

// ONNX ids this file uses.
const (
	irVersion    = 8
	opsetVersion = 13
	floatType    = 1 // TensorProto.DataType FLOAT
)

func build(w [][]float32, b []float32, sigmoid bool, o Options) ([]byte, error) {
	in := len(w)
	if in == 0 || len(w[0]) == 0 {
		return nil, fmt.Errorf("onnx model: weights are empty")
	}
	out := len(w[0])
	for i, row := range w {
		if len(row) != out {
			return nil, fmt.Errorf("onnx model: weight row %d has %d values, row 0 has %d", i, len(row), out)
		}
	}
	if len(b) != out {
		return nil, fmt.Errorf("onnx model: bias has %d values for %d outputs", len(b), out)
	}
	name := o.Name
	if name == "" {
		name = "linear"
		if sigmoid {
			name = "logistic"
		}
	}
	flat := make([]float32, 0, in*out)
	for _, row := range w {
		flat = append(flat, row...)
	}

	var g []byte
	mm := "scores"
	if sigmoid {
		mm = "logits"
	}
	g = appendMessage(g, 1, node("matmul", "MatMul", []string{InputName, "W"}, []string{"xw"}))
	g = appendMessage(g, 1, node("add", "Add", []string{"xw", "B"}, []string{mm}))
	if sigmoid {
		g = appendMessage(g, 1, node("sigmoid", "Sigmoid", []string{"logits"}, []string{OutputName}))
	}
	g = appendString(g, 2, name)
	g = appendMessage(g, 5, tensor("W", []int64{int64(in), int64(out)}, flat))
	g = appendMessage(g, 5, tensor("B", []int64{int64(out)}, b))
	g = appendMessage(g, 11, valueInfo(InputName, in))
	g = appendMessage(g, 12, valueInfo(OutputName, out))

	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType) // ir_version
	m = protowire.AppendVarint(m, irVersion)
	m = appendString(m, 2, "eddy onnxmodel") // producer_name
	if o.Version != 0 {
		m = protowire.AppendTag(m, 5, protowire.VarintType) // model_version
		m = protowire.AppendVarint(m, uint64(o.Version))
	}
	m = appendMessage(m, 7, g) // graph
	var opset []byte
	opset = appendString(opset, 1, "")
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, opsetVersion)
	m = appendMessage(m, 8, opset) // opset_import
	return m, nil
}

// node is a NodeProto.
func node(name, op string, inputs, outputs []string) []byte {
	var n []byte
	for _, s := range inputs {
		n = appendString(n, 1, s)
	}
	for _, s := range outputs {
		n = appendString(n, 2, s)
	}
	n = appendString(n, 3, name)
	n = appendString(n, 4, op)
	return n
}

// tensor is a float TensorProto initializer, its values as raw little-endian bytes.
func tensor(name string, dims []int64, values []float32) []byte {
	var t []byte
	for _, d := range dims {
		t = protowire.AppendTag(t, 1, protowire.VarintType)
		t = protowire.AppendVarint(t, uint64(d))
	}
	t = protowire.AppendTag(t, 2, protowire.VarintType)
	t = protowire.AppendVarint(t, floatType)
	t = appendString(t, 8, name)
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	t = protowire.AppendTag(t, 9, protowire.BytesType)
	return protowire.AppendBytes(t, raw)
}

// valueInfo is the ValueInfoProto of a float tensor [batch, width].
func valueInfo(name string, width int) []byte {
	var batch, fixed []byte
	batch = appendString(batch, 2, "batch") // dim_param
	fixed = protowire.AppendTag(fixed, 1, protowire.VarintType)
	fixed = protowire.AppendVarint(fixed, uint64(width)) // dim_value
	var shape []byte
	shape = appendMessage(shape, 1, batch)
	shape = appendMessage(shape, 1, fixed)
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, floatType) // elem_type
	tt = appendMessage(tt, 2, shape)
	var typ []byte
	typ = appendMessage(typ, 1, tt) // tensor_type
	var vi []byte
	vi = appendString(vi, 1, name)
	vi = appendMessage(vi, 2, typ)
	return vi
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, field protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
