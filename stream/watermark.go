package stream

import (
	"math"
	"time"
)

// Watermark bounds, in Unix ms: no watermark yet, and the end of event time (an input that
// has ended). The runtime uses the same values.
const (
	MinWatermark int64 = math.MinInt64
	MaxWatermark int64 = math.MaxInt64
)

// WatermarkStrategy says how the watermarks of a stream follow its records' timestamps.
// Each parallel instance of the Timestamps stage gets its own generator.
type WatermarkStrategy[T any] interface {
	NewGenerator() WatermarkGenerator[T]
}

// WatermarkGenerator produces the watermarks of one instance. A watermark W promises that
// no record with a timestamp at or below W should still come; records that break the
// promise are late.
type WatermarkGenerator[T any] interface {
	// OnRecord sees every record's value and timestamp, in order, and returns a watermark to
	// emit right after the record, if any (punctuated strategies).
	OnRecord(v T, ts int64) (wm int64, emit bool)
	// OnBatchEnd returns a watermark to emit after a batch of records (periodic strategies:
	// a batch is at most a few milliseconds of input).
	OnBatchEnd() (wm int64, emit bool)
}

// BoundedOutOfOrder is the strategy for records that arrive at most delay out of order:
// W = (largest timestamp so far) − delay, emitted periodically, after each batch.
func BoundedOutOfOrder[T any](delay time.Duration) WatermarkStrategy[T] {
	return bounded[T]{delay: delay.Milliseconds()}
}

// BoundedOutOfOrderPunctuated is BoundedOutOfOrder emitted after every record that moves
// it: exact per-record watermarks, at the cost of smaller batches.
func BoundedOutOfOrderPunctuated[T any](delay time.Duration) WatermarkStrategy[T] {
	return bounded[T]{delay: delay.Milliseconds(), everyRecord: true}
}

// Monotonous is the strategy for records in timestamp order: W = largest timestamp so far.
func Monotonous[T any]() WatermarkStrategy[T] { return bounded[T]{} }

type bounded[T any] struct {
	delay       int64
	everyRecord bool
}

func (b bounded[T]) NewGenerator() WatermarkGenerator[T] {
	return &boundedGen[T]{delay: b.delay, everyRecord: b.everyRecord, max: MinWatermark, emitted: MinWatermark}
}

type boundedGen[T any] struct {
	delay       int64
	everyRecord bool
	max         int64
	emitted     int64
}

func (g *boundedGen[T]) OnRecord(_ T, ts int64) (int64, bool) {
	if ts > g.max {
		g.max = ts
	}
	if g.everyRecord {
		return g.next()
	}
	return 0, false
}

func (g *boundedGen[T]) OnBatchEnd() (int64, bool) { return g.next() }

func (g *boundedGen[T]) next() (int64, bool) {
	if g.max == MinWatermark {
		return 0, false
	}
	w := g.max - g.delay
	if w <= g.emitted {
		return 0, false
	}
	g.emitted = w
	return w, true
}

// Punctuated is the strategy where the records themselves say when the watermark moves:
// f is called for every record, in order, and a watermark it returns with ok follows that
// record (when it is above the last one).
func Punctuated[T any](f func(v T, ts int64) (wm int64, ok bool)) WatermarkStrategy[T] {
	return punctuated[T]{f}
}

type punctuated[T any] struct{ f func(T, int64) (int64, bool) }

func (p punctuated[T]) NewGenerator() WatermarkGenerator[T] {
	return &punctuatedGen[T]{f: p.f, emitted: MinWatermark}
}

type punctuatedGen[T any] struct {
	f       func(T, int64) (int64, bool)
	emitted int64
}

func (g *punctuatedGen[T]) OnRecord(v T, ts int64) (int64, bool) {
	w, ok := g.f(v, ts)
	if !ok || w <= g.emitted {
		return 0, false
	}
	g.emitted = w
	return w, true
}

func (g *punctuatedGen[T]) OnBatchEnd() (int64, bool) { return 0, false }
