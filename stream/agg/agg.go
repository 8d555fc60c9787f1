package agg

import (
	"cmp"

	"github.com/eddyflow/eddy/stream"
)

// Count counts records.
func Count[T any]() stream.Aggregator[T, int64, int64] { return countAgg[T]{} }

type countAgg[T any] struct{}

func (countAgg[T]) Zero() int64                  { return 0 }
func (countAgg[T]) Add(acc int64, _ T) int64     { return acc + 1 }
func (countAgg[T]) Retract(acc int64, _ T) int64 { return acc - 1 }
func (countAgg[T]) Merge(a, b int64) int64       { return a + b }
func (countAgg[T]) Result(acc int64) int64       { return acc }

// Number is a type Sum can add.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// Sum adds the values.
func Sum[T Number]() stream.Aggregator[T, T, T] { return sumAgg[T]{} }

type sumAgg[T Number] struct{}

func (sumAgg[T]) Zero() T            { return 0 }
func (sumAgg[T]) Add(acc, v T) T     { return acc + v }
func (sumAgg[T]) Retract(acc, v T) T { return acc - v }
func (sumAgg[T]) Merge(a, b T) T     { return a + b }
func (sumAgg[T]) Result(acc T) T     { return acc }

// Reduced is the accumulator of Reduce: the value so far, and whether there is one.
type Reduced[T any] struct {
	Value T
	Set   bool
}

// Reduce turns a reduce function into an aggregator whose result is the reduced value.
// It cannot retract.
func Reduce[T any](f func(acc, v T) T) stream.Aggregator[T, Reduced[T], T] { return reduceAgg[T]{f} }

type reduceAgg[T any] struct{ f func(acc, v T) T }

func (reduceAgg[T]) Zero() Reduced[T] { return Reduced[T]{} }
func (r reduceAgg[T]) Add(acc Reduced[T], v T) Reduced[T] {
	if !acc.Set {
		return Reduced[T]{Value: v, Set: true}
	}
	return Reduced[T]{Value: r.f(acc.Value, v), Set: true}
}
func (r reduceAgg[T]) Merge(a, b Reduced[T]) Reduced[T] {
	if !a.Set {
		return b
	}
	if !b.Set {
		return a
	}
	return Reduced[T]{Value: r.f(a.Value, b.Value), Set: true}
}
func (reduceAgg[T]) Result(acc Reduced[T]) T { return acc.Value }

// Min keeps the smallest value. It merges and cannot retract.
func Min[T cmp.Ordered]() stream.Aggregator[T, Reduced[T], T] {
	return reduceAgg[T]{func(a, b T) T { return min(a, b) }}
}

// Max keeps the largest value. It merges and cannot retract.
func Max[T cmp.Ordered]() stream.Aggregator[T, Reduced[T], T] {
	return reduceAgg[T]{func(a, b T) T { return max(a, b) }}
}

// Mean is the accumulator of Avg: the sum and the count of the values.
type Mean struct {
	Sum   float64
	Count int64
}

// Avg is the arithmetic mean of the values (0 for none). It retracts and merges.
func Avg[T Number]() stream.Aggregator[T, Mean, float64] { return avgAgg[T]{} }

type avgAgg[T Number] struct{}

func (avgAgg[T]) Zero() Mean                 { return Mean{} }
func (avgAgg[T]) Add(acc Mean, v T) Mean     { return Mean{acc.Sum + float64(v), acc.Count + 1} }
func (avgAgg[T]) Retract(acc Mean, v T) Mean { return Mean{acc.Sum - float64(v), acc.Count - 1} }
func (avgAgg[T]) Merge(a, b Mean) Mean       { return Mean{a.Sum + b.Sum, a.Count + b.Count} }
func (avgAgg[T]) Result(acc Mean) float64 {
	if acc.Count == 0 {
		return 0
	}
	return acc.Sum / float64(acc.Count)
}
