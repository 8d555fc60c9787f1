package agg_test

import (
	"testing"

	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// fold adds vs to a fresh accumulator, then retracts rs when the aggregator can.
func fold[T, A, R any](t *testing.T, a stream.Aggregator[T, A, R], vs, rs []T) R {
	t.Helper()
	acc := a.Zero()
	for _, v := range vs {
		acc = a.Add(acc, v)
	}
	if len(rs) > 0 {
		r, ok := a.(stream.Retracter[T, A])
		if !ok {
			t.Fatalf("%T cannot retract", a)
		}
		for _, v := range rs {
			acc = r.Retract(acc, v)
		}
	}
	return a.Result(acc)
}

// merged folds vs split in two and merges the halves: the same result as one fold.
func merged[T, A, R any](t *testing.T, a stream.Aggregator[T, A, R], vs []T) R {
	t.Helper()
	m, ok := a.(stream.Merger[A])
	if !ok {
		t.Fatalf("%T cannot merge", a)
	}
	x, y := a.Zero(), a.Zero()
	for i, v := range vs {
		if i%2 == 0 {
			x = a.Add(x, v)
		} else {
			y = a.Add(y, v)
		}
	}
	return a.Result(m.Merge(x, y))
}

func TestAggregators(t *testing.T) {
	vs := []int{5, -2, 9, 9, 3}
	tests := []struct {
		name          string
		got, want     any
		merged, wantM any
	}{
		{"count", fold(t, agg.Count[int](), vs, nil), int64(5), merged(t, agg.Count[int](), vs), int64(5)},
		{"count retracted", fold(t, agg.Count[int](), vs, []int{9}), int64(4), nil, nil},
		{"sum", fold(t, agg.Sum[int](), vs, nil), 24, merged(t, agg.Sum[int](), vs), 24},
		{"sum retracted", fold(t, agg.Sum[int](), vs, []int{9, 5}), 10, nil, nil},
		{"avg", fold(t, agg.Avg[int](), vs, nil), 4.8, merged(t, agg.Avg[int](), vs), 4.8},
		{"avg retracted", fold(t, agg.Avg[int](), vs, []int{-2}), 6.5, nil, nil},
		{"avg of none", fold(t, agg.Avg[int](), nil, nil), 0.0, nil, nil},
		{"min", fold(t, agg.Min[int](), vs, nil), -2, merged(t, agg.Min[int](), vs), -2},
		{"max", fold(t, agg.Max[int](), vs, nil), 9, merged(t, agg.Max[int](), vs), 9},
		{"reduce", fold(t, agg.Reduce(func(a, b int) int { return a*10 + b }), []int{1, 2, 3}, nil), 123, nil, nil},
		{"reduce merged", merged(t, agg.Reduce(func(a, b int) int { return a + b }), vs), 24, nil, nil},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
		if tt.merged != tt.wantM {
			t.Errorf("%s merged: %v, want %v", tt.name, tt.merged, tt.wantM)
		}
	}
}

func TestMinMaxCannotRetract(t *testing.T) {
	// A retracted minimum cannot be undone without the other values: Min and Max must not
	// claim they can, so that a retraction into them is an error, not a wrong result.
	if _, ok := agg.Min[int]().(stream.Retracter[int, agg.Reduced[int]]); ok {
		t.Error("Min claims to retract")
	}
	if _, ok := agg.Max[int]().(stream.Retracter[int, agg.Reduced[int]]); ok {
		t.Error("Max claims to retract")
	}
}
