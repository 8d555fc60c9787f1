package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Source is a supply of records, bounded or not, read in independent splits. Each split is
// read by its own actor (identity job/source/split), so a source with n splits is read with
// parallelism n.
type Source[T any] interface {
	// Splits divides the source into at most n splits (n ≥ 1). A source that cannot be
	// divided returns one.
	Splits(n int) ([]Split[T], error)
}

// Split is one independently readable part of a source. Its methods are called from one
// goroutine at a time.
//
// A split that can rewind also has the two methods
//
//	// Offset returns the position after the last record handed out: opaque bytes the
//	// split understands, versioned by a leading byte.
//	Offset() ([]byte, error)
//	// Seek moves to an offset Offset returned (of the same source); a bad or foreign
//	// offset is an error, never a panic.
//	Seek(offset []byte) error
//
// and can take part in checkpoints: the runtime records the offset at a checkpoint barrier
// and, on recovery, seeks a new split there before the first Read. A job with checkpoints
// refuses, when it is built, a source whose splits cannot rewind. The splits of Lines, JSONL,
// Slice and Generate rewind; those of Channel and LinesFrom do not (what they read cannot be
// read again).
//
// Offsets of this package are 18 bytes: a version byte (1), a kind byte ('L' for a line
// position in a file, 'R' for an index in a range), then two big-endian int64: for line
// splits (Lines, JSONL) the byte offset of the next line, then its 1-based line number, so
// that dead letters keep their line numbers after a Seek; for range splits (Slice,
// Generate) the next index, then the end of the split's range, which Seek checks.
type Split[T any] interface {
	// Read hands at most max records to out and returns how many it handed. It returns
	// io.EOF once the split is exhausted (possibly together with n > 0). When no data is
	// ready it may wait briefly (a few milliseconds, or until ctx is done) and return 0, nil.
	// Malformed input goes to out.DeadLetter and does not count in n.
	Read(ctx context.Context, max int, out Output[T]) (n int, err error)
	// Close releases what the split holds. It is called once, after the last Read.
	Close() error
}

// PanicError reports a panic in a user function called by a source.
type PanicError struct {
	// Position locates the input that made it panic (the index i of Generate's f(i)).
	Position int64
	// Value is what it panicked with.
	Value any
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic at position %d: %v", e.Position, e.Value)
}

// Output receives what a split reads.
type Output[T any] interface {
	// Emit hands one record on.
	Emit(Record[T])
	// DeadLetter reports input that could not become a record.
	DeadLetter(DeadLetter)
	// Watermark says that no record at or below w (Unix ms) follows from this split: for
	// sources that know their event time (a log with its own watermarks, a test's input).
	Watermark(w int64)
}

// Positioned is implemented by splits that know where the record they emitted last came
// from (a file and its 1-based line), so that the dead letters of a stage fed by the split
// can say where their input was.
type Positioned interface {
	Position() (source string, pos int64)
}

// Slice is a bounded source of the values of s, in order, with no timestamps. With n splits
// each split reads a contiguous part.
func Slice[T any](s []T) Source[T] { return sliceSource[T](s) }

type sliceSource[T any] []T

func (s sliceSource[T]) Splits(n int) ([]Split[T], error) {
	return rangeSplits(int64(len(s)), n, func(i int64) T { return s[i] }), nil
}

// Generate is a bounded source of f(0), f(1), ..., f(count-1). With n splits each split
// generates a contiguous range of i.
func Generate[T any](count int64, f func(i int64) T) Source[T] {
	return generator[T]{count: count, f: f}
}

type generator[T any] struct {
	count int64
	f     func(int64) T
}

func (g generator[T]) Splits(n int) ([]Split[T], error) {
	if g.count < 0 {
		return nil, fmt.Errorf("generate: negative count %d", g.count)
	}
	if g.f == nil {
		return nil, errors.New("generate: nil function")
	}
	return rangeSplits(g.count, n, g.f), nil
}

func rangeSplits[T any](count int64, n int, f func(int64) T) []Split[T] {
	if n < 1 {
		n = 1
	}
	// Split i gets q records, and one more for the first r splits: no multiplication that
	// could overflow for huge counts.
	q, r := count/int64(n), count%int64(n)
	splits := make([]Split[T], 0, n)
	var next int64
	for i := range int64(n) {
		size := q
		if i < r {
			size++
		}
		splits = append(splits, &rangeSplit[T]{next: next, end: next + size, f: f})
		next += size
	}
	return splits
}

type rangeSplit[T any] struct {
	next, end int64
	f         func(int64) T
}

func (s *rangeSplit[T]) Read(_ context.Context, max int, out Output[T]) (int, error) {
	if s.next >= s.end {
		return 0, io.EOF
	}
	if max <= 0 {
		return 0, nil
	}
	end := s.next + min(int64(max), s.end-s.next)
	n := int(end - s.next)
	for i := s.next; i < end; i++ {
		// Move on before emitting, so that a record whose processing panics is not read
		// again.
		s.next = i + 1
		out.Emit(Record[T]{Value: s.f(i)})
	}
	if s.next >= s.end {
		return n, io.EOF
	}
	return n, nil
}

// Append is Read without a call per record: the loop the engine's generated-input benchmarks
// spend their time in.
func (s *rangeSplit[T]) Append(_ context.Context, dst []Record[T], max int) (out []Record[T], err error) {
	if s.next >= s.end {
		return dst, io.EOF
	}
	if max <= 0 {
		return dst, nil
	}
	end := s.next + min(int64(max), s.end-s.next)
	i := s.next
	defer func() {
		if p := recover(); p != nil {
			s.next = i + 1
			err = &PanicError{Position: i, Value: p}
		}
	}()
	out = dst
	for ; i < end; i++ {
		out = append(out, Record[T]{Value: s.f(i)})
	}
	s.next = end
	if s.next >= s.end {
		return out, io.EOF
	}
	return out, nil
}

func (s *rangeSplit[T]) Close() error { return nil }

// Channel is a source that reads ch until it is closed: one split, whatever the parallelism.
// It is unbounded until the channel is closed.
func Channel[T any](ch <-chan T) Source[T] { return chanSource[T]{ch} }

type chanSource[T any] struct{ ch <-chan T }

func (c chanSource[T]) Splits(int) ([]Split[T], error) {
	if c.ch == nil {
		return nil, errors.New("channel source: nil channel")
	}
	return []Split[T]{&chanSplit[T]{ch: c.ch}}, nil
}

// chanWait bounds how long a channel split waits for its first value, so that its actor can
// answer credits and stops in between.
const chanWait = 5 * time.Millisecond

type chanSplit[T any] struct {
	ch    <-chan T
	timer *time.Timer
}

func (c *chanSplit[T]) Read(ctx context.Context, max int, out Output[T]) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	n := 0
	// Take what is ready without waiting.
	for n < max {
		select {
		case v, ok := <-c.ch:
			if !ok {
				return n, io.EOF
			}
			out.Emit(Record[T]{Value: v})
			n++
			continue
		default:
		}
		break
	}
	if n > 0 {
		return n, nil
	}
	if c.timer == nil {
		c.timer = time.NewTimer(chanWait)
	} else {
		c.timer.Reset(chanWait)
	}
	defer c.timer.Stop()
	select {
	case v, ok := <-c.ch:
		if !ok {
			return 0, io.EOF
		}
		out.Emit(Record[T]{Value: v})
		return 1, nil
	case <-c.timer.C:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *chanSplit[T]) Close() error { return nil }
