// Package onnxrt runs ONNX models in process with ONNX Runtime (the runtime Triton and
// KServe use for ONNX), through github.com/yalue/onnxruntime_go. A Model is an infer.Model.
//
//	m, err := onnxrt.Open("model.onnx")
//	if err != nil { ... }
//	defer m.Close()
//	scored := infer.Stage(records, m, features)
//
// The ONNX Runtime shared library (1.24.1, C API 24, which the Go binding is built for) is
// loaded at the first Open: from the path in ONNXRUNTIME_LIB, or else from
// $HOME/.cache/eddy/onnxruntime/libonnxruntime.so.1, where .ci/install-onnxruntime.sh
// puts it (from the npm package onnxruntime-node).
package onnxrt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/eddyflow/eddy/stream/infer"
)

// LibraryEnv is the environment variable that names the ONNX Runtime shared library.
const LibraryEnv = "ONNXRUNTIME_LIB"

// InstallHint says how to get the library, for error messages.
const InstallHint = "install it with `bash .ci/install-onnxruntime.sh` (npm onnxruntime-node@1.24.1) or set " + LibraryEnv + " to a libonnxruntime.so of ONNX Runtime 1.24.x"

// LibraryPath returns where the ONNX Runtime shared library is: ONNXRUNTIME_LIB, or the
// install script's default location. It is an error, saying how to install it, if there is
// no file there.
func LibraryPath() (string, error) {
	path := os.Getenv(LibraryEnv)
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the ONNX Runtime library: %w; %s", err, InstallHint)
		}
		path = filepath.Join(home, ".cache", "eddy", "onnxruntime", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ONNX Runtime library %s: %w; %s", path, err, InstallHint)
	}
	return path, nil
}

// env is the process's one ONNX Runtime environment, made at the first Open.
var env struct {
	once sync.Once
	err  error
}

func initialize() error {
	env.once.Do(func() {
		path, err := LibraryPath()
		if err != nil {
			env.err = err
			return
		}
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(); err != nil {
			env.err = fmt.Errorf("load ONNX Runtime from %s: %w; %s", path, err, InstallHint)
		}
	})
	return env.err
}

// Model is one ONNX model loaded into an ONNX Runtime session: its first input takes
// float32 [batch, width], its first output gives float32 [batch, m]. It is safe for
// concurrent use (ONNX Runtime runs a session from several threads).
type Model struct {
	session         *ort.DynamicAdvancedSession
	input, output   string
	width, outWidth int
	// mu guards closed against Infer calls in progress: Close waits for them.
	mu     sync.RWMutex
	closed bool
}

// Option configures a session.
type Option func(*ort.SessionOptions) error

// Threads sets the threads one inference may use (default 1: the inference stage runs
// several requests at once, each on its own goroutine).
func Threads(n int) Option {
	return func(o *ort.SessionOptions) error { return o.SetIntraOpNumThreads(n) }
}

// Open loads the ONNX model at path.
func Open(path string, opts ...Option) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open ONNX model: %w", err)
	}
	m, err := Load(data, opts...)
	if err != nil {
		return nil, fmt.Errorf("open ONNX model %s: %w", path, err)
	}
	return m, nil
}

// Load loads an ONNX model from its bytes.
func Load(data []byte, opts ...Option) (*Model, error) {
	if err := initialize(); err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("read the model's inputs and outputs: %w", err)
	}
	if len(ins) == 0 || len(outs) == 0 {
		return nil, errors.New("the model has no input or no output")
	}
	in, out := ins[0], outs[0]
	if in.DataType != ort.TensorElementDataTypeFloat || out.DataType != ort.TensorElementDataTypeFloat {
		return nil, fmt.Errorf("input %s and output %s must be float32 tensors", in, out)
	}
	if len(in.Dimensions) != 2 || in.Dimensions[1] <= 0 {
		return nil, fmt.Errorf("input %s: want shape [batch, width] with a fixed width", in)
	}
	if len(out.Dimensions) != 2 {
		return nil, fmt.Errorf("output %s: want shape [batch, m]", out)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	for _, o := range opts {
		if err := o(so); err != nil {
			return nil, fmt.Errorf("session options: %w", err)
		}
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{in.Name}, []string{out.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	return &Model{session: s, input: in.Name, output: out.Name, width: int(in.Dimensions[1]), outWidth: int(out.Dimensions[1])}, nil
}

// InputWidth is the fixed second dimension of the model's first input.
func (m *Model) InputWidth() int { return m.width }

// OutputWidth is the second dimension of the model's first output; -1 if symbolic.
func (m *Model) OutputWidth() int { return m.outWidth }

// Infer runs the model on rows, as one tensor [len(rows), width]. When ctx ends first, the
// run is terminated.
func (m *Model) Infer(ctx context.Context, rows [][]float32) ([][]float32, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errors.New("onnx model is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run the model: %w", err)
	}
	flat := make([]float32, 0, len(rows)*m.width)
	for i, r := range rows {
		if len(r) != m.width {
			return nil, infer.Permanent(fmt.Errorf("row %d has %d values; the model takes %d", i, len(r), m.width))
		}
		flat = append(flat, r...)
	}
	in, err := ort.NewTensor(ort.NewShape(int64(len(rows)), int64(m.width)), flat)
	if err != nil {
		return nil, fmt.Errorf("input tensor: %w", err)
	}
	defer in.Destroy()
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("run options: %w", err)
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { _ = ro.Terminate() })
	outs := []ort.Value{nil}
	err = m.session.RunWithOptions([]ort.Value{in}, outs, ro)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run the model: %w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("run the model: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, infer.Permanent(fmt.Errorf("output is a %T, not a float32 tensor", outs[0]))
	}
	shape := t.GetShape()
	if len(shape) != 2 || shape[0] != int64(len(rows)) {
		return nil, infer.Permanent(fmt.Errorf("output shape %v for %d rows", shape, len(rows)))
	}
	data := t.GetData()
	w := int(shape[1])
	res := make([][]float32, len(rows))
	all := make([]float32, len(data)) // one allocation; the tensor's memory goes with it
	copy(all, data)
	for i := range res {
		res[i] = all[i*w : (i+1)*w : (i+1)*w]
	}
	return res, nil
}

// Close releases the session once the inferences in progress are done. It is safe to call
// twice.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.session.Destroy()
}
