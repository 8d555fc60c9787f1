package infer

import (
	"context"
	"errors"
	"fmt"
)

// Model scores a batch: one input row per record (the model's input tensor, shape
// [len(rows), width]), one output row per input row, in the same order. Implementations
// must be safe for concurrent use (the stage calls Infer from up to Concurrency goroutines)
// and should return when ctx is done: the stage's per-request deadline is ctx's.
//
// An error fails the whole batch; the stage retries it. Wrap an error that a retry cannot
// fix (a malformed request) with Permanent.
type Model interface {
	Infer(ctx context.Context, rows [][]float32) ([][]float32, error)
}

// Shaped is implemented by models that know their input width (ONNX, a KServe model's
// metadata). The stage then sends a record whose features have another width to the
// dead-letter output alone, instead of failing the batch it would be in.
type Shaped interface {
	InputWidth() int
}

// Func is a model written in Go: rules, or a model whose weights live in the program.
type Func func(ctx context.Context, rows [][]float32) ([][]float32, error)

// Infer calls f.
func (f Func) Infer(ctx context.Context, rows [][]float32) ([][]float32, error) {
	return f(ctx, rows)
}

// RowFunc is a model that scores one row at a time with f, a pure function.
func RowFunc(f func(row []float32) []float32) Model {
	return Func(func(_ context.Context, rows [][]float32) ([][]float32, error) {
		out := make([][]float32, len(rows))
		for i, r := range rows {
			out[i] = f(r)
		}
		return out, nil
	})
}

// Scored is a record with what the model made of it.
type Scored[T any] struct {
	// In is the record as it reached the stage.
	In T `json:"in"`
	// Output is the model's output row for the record.
	Output []float32 `json:"output"`
	// Version names the model version that scored it ("" for a single Model).
	Version string `json:"version,omitempty"`
}

// permanentError is an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that a retry cannot fix: the stage sends the batch's records to
// the dead-letter output at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// checkOutput checks that a model answered one row per input row.
func checkOutput(in, out [][]float32) error {
	if len(out) != len(in) {
		return Permanent(fmt.Errorf("model returned %d rows for %d", len(out), len(in)))
	}
	return nil
}
