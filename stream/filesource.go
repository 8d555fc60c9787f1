package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// Lines is a bounded source of the lines of the text file at path, without their "\n" or
// "\r\n" (a lone "\r" stays). A last line without a newline is a line; lines may be of any
// length, and bytes that are not valid UTF-8 are passed on as they are. It has one split,
// whatever the parallelism; records have no timestamps.
//
// Splits opens the file (an error names the path and wraps the os error); the split holds it
// open until Close.
func Lines(path string) Source[string] { return lineSource{path: path} }

type lineSource struct{ path string }

func (s lineSource) Splits(int) ([]Split[string], error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("open line source %s: %w", s.path, err)
	}
	return []Split[string]{&fileLineSplit{newLineSplit(s.path, f, f)}}, nil
}

// LinesFrom is Lines over r, for stdin and tests: one split, and r is read once (a second
// call of Splits is an error). name stands for r in error messages. The caller owns r: the
// split does not close it.
//
// A read from r blocks until a line or the end arrives, and does not return early when the
// context is done; over a reader that can stall (a terminal, a pipe) a Read may wait as long
// as the reader does.
func LinesFrom(name string, r io.Reader) Source[string] {
	return &readerSource{name: name, r: r}
}

type readerSource struct {
	name string
	r    io.Reader
	used atomic.Bool
}

func (s *readerSource) Splits(int) ([]Split[string], error) {
	if s.r == nil {
		return nil, fmt.Errorf("line source %s: nil reader", s.name)
	}
	if s.used.Swap(true) {
		return nil, fmt.Errorf("line source %s: the reader was already handed to a split", s.name)
	}
	return []Split[string]{newLineSplit(s.name, s.r, nil)}, nil
}

// lineSplit reads lines from a reader; each Read takes at most max lines.
type lineSplit struct {
	name string
	r    *bufio.Reader
	// c is closed by Close; nil when the caller owns the reader.
	c io.Closer
	// line is the number of lines read so far: the 1-based number of the last one.
	line int64
	eof  bool
	// pos is the byte offset in the input of the next line: the bytes read so far, with
	// their terminators.
	pos int64
	// file is the file read, which Seek positions (see replay.go); nil when the caller owns
	// the reader.
	file *os.File
}

func newLineSplit(name string, r io.Reader, c io.Closer) *lineSplit {
	s := &lineSplit{name: name, r: bufio.NewReaderSize(r, 64<<10), c: c}
	if f, ok := r.(*os.File); ok && c != nil {
		s.file = f
	}
	return s
}

// next returns the next line without its terminator, or io.EOF after the last one.
func (s *lineSplit) next() (string, error) {
	if s.eof {
		return "", io.EOF
	}
	line, err := s.r.ReadString('\n')
	if err == nil || err == io.EOF {
		s.pos += int64(len(line))
	}
	switch {
	case err == io.EOF:
		s.eof = true
		if line == "" {
			return "", io.EOF
		}
		// The last line, without a newline: nothing to trim.
	case err != nil:
		return "", fmt.Errorf("read %s after line %d: %w", s.name, s.line, err)
	default:
		line = line[:len(line)-1]
		line = strings.TrimSuffix(line, "\r")
	}
	s.line++
	return line, nil
}

func (s *lineSplit) Read(_ context.Context, max int, out Output[string]) (int, error) {
	n := 0
	for n < max {
		line, err := s.next()
		if err != nil {
			return n, err
		}
		out.Emit(Record[string]{Value: line})
		n++
	}
	return n, nil
}

// Position implements Positioned: the file and the line read last.
func (s *lineSplit) Position() (string, int64) { return s.name, s.line }

func (s *lineSplit) Close() error {
	if s.c == nil {
		return nil
	}
	c := s.c
	s.c = nil
	if err := c.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.name, err)
	}
	return nil
}

// JSONL is a bounded source of the JSON-lines file at path: every line that is not empty or
// blank is decoded into a T with encoding/json, and becomes a record. It has one split,
// whatever the parallelism; records have no timestamps.
//
// A line that does not decode (not JSON, a JSON type that does not fit T, or data after the
// value) goes to the dead-letter output with Stage "jsonl <path>", the decoder's error as
// Reason, the raw line as Value and its 1-based line number as Position; reading goes on.
//
// As with encoding/json, fields of the line that T lacks are ignored, fields of T that the
// line lacks keep their zero value, and a line "null" is the zero T. This generic source
// cannot tell a missing field from a zero one: checks of that kind belong to the user's type
// (a TryMap stage after the source, say).
func JSONL[T any](path string) Source[T] { return jsonlSource[T]{path: path} }

type jsonlSource[T any] struct{ path string }

func (s jsonlSource[T]) Splits(int) ([]Split[T], error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("open jsonl source %s: %w", s.path, err)
	}
	return []Split[T]{&jsonlSplit[T]{lines: newLineSplit(s.path, f, f), stage: "jsonl " + s.path}}, nil
}

type jsonlSplit[T any] struct {
	lines *lineSplit
	stage string
}

// Read hands on at most max decoded records; blank lines and dead letters do not count.
func (s *jsonlSplit[T]) Read(_ context.Context, max int, out Output[T]) (int, error) {
	n := 0
	for n < max {
		line, err := s.lines.next()
		if err != nil {
			return n, err
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			out.DeadLetter(DeadLetter{Stage: s.stage, Reason: err.Error(), Value: line, Position: s.lines.line, Source: s.lines.name})
			continue
		}
		out.Emit(Record[T]{Value: v})
		n++
	}
	return n, nil
}

// Position implements Positioned: the file and the line read last.
func (s *jsonlSplit[T]) Position() (string, int64) { return s.lines.Position() }

func (s *jsonlSplit[T]) Close() error { return s.lines.Close() }
