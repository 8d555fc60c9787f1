package stream

import (
	"errors"
	"fmt"
)

// Aggregator folds values of T into an accumulator A and reads a result R from it
// (Flink's AggregateFunction). Accumulators are values: Add returns the new one.
type Aggregator[T, A, R any] interface {
	// Zero returns the accumulator of no values.
	Zero() A
	// Add returns acc with v added.
	Add(acc A, v T) A
	// Result reads the result from acc.
	Result(acc A) R
}

// Retracter is implemented by aggregators that can take a value back (count, sum), so that a
// Retract record undoes an earlier insert.
type Retracter[T, A any] interface {
	Retract(acc A, v T) A
}

// Merger is implemented by aggregators whose accumulators combine (for merging windows and
// partial aggregates). Merge(a, b) must be what adding b's values to a one by one would
// give: graph's Aggregate folds records into partial accumulators upstream of the keyed
// stage and merges those (local aggregation), so a Merger is taken at its word.
type Merger[A any] interface {
	Merge(a, b A) A
}

// ErrCannotRetract is the reason a retraction reaches an aggregator that cannot retract.
var ErrCannotRetract = errors.New("aggregator cannot retract")

// EmitMode says when a running aggregate sends its updated results downstream.
type EmitMode uint8

const (
	// EmitPerBatch sends, after each input batch, the latest result of every key the batch
	// changed: updates are compacted as Kafka Streams' record cache compacts a KTable's, and
	// the last result of every key is always sent. The default.
	EmitPerBatch EmitMode = iota
	// EmitEveryUpdate sends a result for every input record (Flink's running reduce).
	EmitEveryUpdate
	// EmitAtEnd sends each key's result once, when a bounded input has ended (batch mode).
	EmitAtEnd
)

func (m EmitMode) String() string {
	switch m {
	case EmitPerBatch:
		return "per-batch"
	case EmitEveryUpdate:
		return "every-update"
	case EmitAtEnd:
		return "at-end"
	default:
		return fmt.Sprintf("emit-mode(%d)", uint8(m))
	}
}
