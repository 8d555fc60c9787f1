package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Stdout is a sink that writes each record's value to standard output as one line of JSON.
// It is JSONLWriterSink over os.Stdout: a batch goes out in one write, so the output of
// concurrent writers interleaves only between batches. Close does not close os.Stdout.
func StdoutSink[T any]() Sink[T] { return JSONLWriterSink[T](os.Stdout) }

// JSONLWriterSink is a sink that writes each record's value to w as one line of JSON (encoding/json,
// without HTML escaping). It is safe for concurrent use.
//
// A batch is encoded whole into a buffer, then written to w in one Write when the batch ends,
// so writers interleave only between batches. A batch with a value that does not encode (a NaN
// float, a channel) writes nothing, and the error names the record: every record of a failed
// batch is unwritten, so none is written twice if the batch goes to the dead-letter output.
// Close writes nothing more and does not close w.
func JSONLWriterSink[T any](w io.Writer) Sink[T] {
	return newJSONLSink[T](w, nil, "jsonl writer")
}

// JSONLFileSink is a sink that writes JSON lines, as JSONLWriterSink does, to the file at path, which
// it creates or truncates. Close closes the file.
func JSONLFileSink[T any](path string) (Sink[T], error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create jsonl sink file: %w", err)
	}
	return newJSONLSink[T](f, f, "jsonl file "+path), nil
}

type jsonlSink[T any] struct {
	name string

	// mu guards w, c, buf, enc and closed.
	mu sync.Mutex
	w  io.Writer
	// c is closed by Close; nil when the caller owns w.
	c      io.Closer
	buf    bytes.Buffer
	enc    *json.Encoder
	closed bool
}

// maxKeptBuffer is the largest batch buffer a JSONL sink keeps between batches.
const maxKeptBuffer = 1 << 20

func newJSONLSink[T any](w io.Writer, c io.Closer, name string) *jsonlSink[T] {
	s := &jsonlSink[T]{name: name, w: w, c: c}
	s.enc = json.NewEncoder(&s.buf)
	s.enc.SetEscapeHTML(false)
	return s
}

func (s *jsonlSink[T]) WriteBatch(recs []Record[T]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%s: write after close", s.name)
	}
	defer func() {
		s.buf.Reset()
		if s.buf.Cap() > maxKeptBuffer {
			s.buf = bytes.Buffer{}
			s.enc = json.NewEncoder(&s.buf)
			s.enc.SetEscapeHTML(false)
		}
	}()
	for i := range recs {
		if err := s.enc.Encode(recs[i].Value); err != nil {
			return fmt.Errorf("%s: encode record %d of %d (nothing of the batch written): %w", s.name, i, len(recs), err)
		}
	}
	if s.buf.Len() == 0 {
		return nil
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("%s: write batch of %d records: %w", s.name, len(recs), err)
	}
	return nil
}

// Close marks the sink closed and closes the file it owns, if any. A second Close does
// nothing.
func (s *jsonlSink[T]) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.c != nil {
		if err := s.c.Close(); err != nil {
			return fmt.Errorf("%s: close: %w", s.name, err)
		}
	}
	return nil
}

// Func is a sink that calls f with every batch. Calls are serialised, so f need not be safe
// for concurrent use; like any sink, f must not keep recs after it returns. Close does
// nothing.
func FuncSink[T any](f func(recs []Record[T]) error) Sink[T] { return &funcSink[T]{f: f} }

type funcSink[T any] struct {
	// mu serialises calls of f.
	mu sync.Mutex
	f  func([]Record[T]) error
}

func (s *funcSink[T]) WriteBatch(recs []Record[T]) error {
	if s.f == nil {
		return errors.New("func sink: nil function")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f(recs)
}

func (s *funcSink[T]) Close() error { return nil }

// CollectSink is a sink that keeps every record it is given, in arrival order: the sink of tests.
// It is safe for concurrent use; the zero value is ready to use. It copies the records, not
// what their values point to.
type CollectSink[T any] struct {
	// mu guards recs and closed.
	mu     sync.Mutex
	recs   []Record[T]
	closed bool
}

// NewCollectSink returns an empty collecting sink.
func NewCollectSink[T any]() *CollectSink[T] { return &CollectSink[T]{} }

// WriteBatch keeps recs. A write after Close is an error, which helps tests catch runtimes
// that write to a closed sink.
func (c *CollectSink[T]) WriteBatch(recs []Record[T]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("collect sink: write after close")
	}
	c.recs = append(c.recs, recs...)
	return nil
}

// Close marks the sink closed.
func (c *CollectSink[T]) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// Records returns a copy of the records kept so far, in arrival order.
func (c *CollectSink[T]) Records() []Record[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Record[T](nil), c.recs...)
}

// Values returns the values of the records kept so far, in arrival order.
func (c *CollectSink[T]) Values() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	vs := make([]T, len(c.recs))
	for i, r := range c.recs {
		vs[i] = r.Value
	}
	return vs
}

// Len returns how many records were kept.
func (c *CollectSink[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// Closed reports whether Close was called.
func (c *CollectSink[T]) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
