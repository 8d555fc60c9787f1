package operator

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eddyflow/eddy/stream/agg"
)

// aggScript drives op with steps and returns a log of what was emitted, with the batch and
// input ends marked. A step is "key value" (an insert at time value), "-key value" (a
// retraction), "|" (EndBatch) or "end" (EndInput).
func aggScript[A, R any](t *testing.T, agg Aggregator[KV[string, int], A, R], mode EmitMode, steps []string) []string {
	t.Helper()
	var log []string
	op := NewAggregateOperator(func(kv KV[string, int]) string { return kv.Key }, agg, mode, func(r Record[KV[string, R]]) {
		kind := ""
		if r.Kind == Retract {
			kind = "-"
		}
		log = append(log, fmt.Sprintf("%s%s=%v@%d", kind, r.Value.Key, r.Value.Value, r.Time))
	})
	for _, s := range steps {
		switch s {
		case "|":
			op.EndBatch()
			log = append(log, "|")
		case "end":
			op.EndInput()
			log = append(log, "end")
		default:
			key, val, _ := strings.Cut(s, " ")
			n, err := strconv.Atoi(val)
			if err != nil {
				t.Fatalf("bad step %q", s)
			}
			r := Record[KV[string, int]]{Value: KV[string, int]{Key: key, Value: n}, Time: int64(n)}
			if k, ok := strings.CutPrefix(key, "-"); ok {
				r.Value.Key, r.Kind = k, Retract
			}
			if err := op.Process(r); err != nil {
				log = append(log, "error: "+err.Error())
			}
		}
	}
	return log
}

// sumOfValues is agg.Sum[int] over the Value of KVs (Sum itself needs numbers as its input).
func sumOfValues() Aggregator[KV[string, int], int, int] { return onValues[int, int]{agg.Sum[int]()} }

// onValues runs an aggregator of ints that can retract over the Value of KVs.
type onValues[A, R any] struct{ agg Aggregator[int, A, R] }

func (o onValues[A, R]) Zero() A                        { return o.agg.Zero() }
func (o onValues[A, R]) Add(acc A, v KV[string, int]) A { return o.agg.Add(acc, v.Value) }
func (o onValues[A, R]) Result(acc A) R                 { return o.agg.Result(acc) }
func (o onValues[A, R]) Retract(acc A, v KV[string, int]) A {
	return o.agg.(Retracter[int, A]).Retract(acc, v.Value)
}

func maxOfValues() Aggregator[KV[string, int], agg.Reduced[KV[string, int]], KV[string, int]] {
	return agg.Reduce(func(acc, v KV[string, int]) KV[string, int] {
		if v.Value > acc.Value {
			return v
		}
		return acc
	})
}

func TestAggregateOperator(t *testing.T) {
	steps := []string{"a 1", "b 2", "a 3", "|", "b 4", "b 5", "|", "|", "c 6", "end"}
	tests := []struct {
		name string
		log  func(t *testing.T) []string
		want []string
	}{
		{"count every-update", func(t *testing.T) []string {
			return aggScript(t, agg.Count[KV[string, int]](), EmitEveryUpdate, steps)
		}, []string{"a=1@1", "b=1@2", "a=2@3", "|", "b=2@4", "b=3@5", "|", "|", "c=1@6", "end"}},
		{"count per-batch", func(t *testing.T) []string {
			return aggScript(t, agg.Count[KV[string, int]](), EmitPerBatch, steps)
		}, []string{"a=2@3", "b=1@2", "|", "b=3@5", "|", "|", "c=1@6", "end"}},
		{"count at-end", func(t *testing.T) []string {
			return aggScript(t, agg.Count[KV[string, int]](), EmitAtEnd, steps)
		}, []string{"|", "|", "|", "a=2@3", "b=3@5", "c=1@6", "end"}},
		{"sum every-update", func(t *testing.T) []string {
			return aggScript(t, sumOfValues(), EmitEveryUpdate, steps)
		}, []string{"a=1@1", "b=2@2", "a=4@3", "|", "b=6@4", "b=11@5", "|", "|", "c=6@6", "end"}},
		{"sum per-batch", func(t *testing.T) []string {
			return aggScript(t, sumOfValues(), EmitPerBatch, steps)
		}, []string{"a=4@3", "b=2@2", "|", "b=11@5", "|", "|", "c=6@6", "end"}},
		{"sum at-end", func(t *testing.T) []string {
			return aggScript(t, sumOfValues(), EmitAtEnd, steps)
		}, []string{"|", "|", "|", "a=4@3", "b=11@5", "c=6@6", "end"}},
		{"reduce every-update", func(t *testing.T) []string {
			return aggScript(t, maxOfValues(), EmitEveryUpdate, []string{"a 3", "a 1", "a 5", "|", "end"})
		}, []string{"a={a 3}@3", "a={a 3}@3", "a={a 5}@5", "|", "end"}},
		{"reduce per-batch", func(t *testing.T) []string {
			return aggScript(t, maxOfValues(), EmitPerBatch, []string{"a 3", "a 1", "|", "a 5", "end"})
		}, []string{"a={a 3}@3", "|", "a={a 5}@5", "end"}},
		{"reduce at-end", func(t *testing.T) []string {
			return aggScript(t, maxOfValues(), EmitAtEnd, []string{"a 3", "a 1", "|", "a 5", "end", "end"})
		}, []string{"|", "a={a 5}@5", "end", "end"}},
		{"count retract", func(t *testing.T) []string {
			return aggScript(t, agg.Count[KV[string, int]](), EmitEveryUpdate, []string{"a 1", "a 2", "-a 1", "-a 2"})
		}, []string{"a=1@1", "a=2@2", "a=1@2", "a=0@2"}},
		{"sum retract per-batch", func(t *testing.T) []string {
			return aggScript(t, sumOfValues(), EmitPerBatch, []string{"a 1", "a 2", "|", "-a 2", "|"})
		}, []string{"a=3@2", "|", "a=1@2", "|"}},
		{"reduce cannot retract", func(t *testing.T) []string {
			return aggScript(t, maxOfValues(), EmitEveryUpdate, []string{"a 1", "-a 1"})
		}, []string{"a={a 1}@1", "error: retract for key a: " + ErrCannotRetract.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.log(t); !slices.Equal(got, tt.want) {
				t.Errorf("emitted\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

func TestAggregateSumRetract(t *testing.T) {
	var got []int
	op := NewAggregateOperator(func(int) string { return "k" }, agg.Sum[int](), EmitEveryUpdate, func(r Record[KV[string, int]]) {
		got = append(got, r.Value.Value)
	})
	for _, r := range []Record[int]{{Value: 5}, {Value: 7}, {Value: 5, Kind: Retract}, {Value: -3}} {
		if err := op.Process(r); err != nil {
			t.Fatal(err)
		}
	}
	if want := []int{5, 12, 7, 4}; !slices.Equal(got, want) {
		t.Errorf("sums %v, want %v", got, want)
	}
	if acc, ok := op.Get("k"); !ok || acc != 4 {
		t.Errorf("Get(k) = %d, %v; want 4, true", acc, ok)
	}
}

func TestAggregateReduceRetractError(t *testing.T) {
	op := NewAggregateOperator(func(s string) string { return s }, agg.Reduce(func(a, b string) string { return a + b }), EmitPerBatch, func(Record[KV[string, string]]) {})
	if err := op.Process(Record[string]{Value: "x"}); err != nil {
		t.Fatal(err)
	}
	err := op.Process(Record[string]{Value: "x", Kind: Retract})
	if !errors.Is(err, ErrCannotRetract) {
		t.Fatalf("retract through Reduce: %v, want ErrCannotRetract", err)
	}
	if acc, _ := op.Get("x"); acc != (agg.Reduced[string]{Value: "x", Set: true}) {
		t.Errorf("accumulator after a refused retraction = %+v, want unchanged", acc)
	}
}

func TestAggregateLenGetReset(t *testing.T) {
	var n int
	op := NewAggregateOperator(func(i int) int { return i % 3 }, agg.Count[int](), EmitPerBatch, func(Record[KV[int, int64]]) { n++ })
	for i := range 10 {
		if err := op.Process(Record[int]{Value: i}); err != nil {
			t.Fatal(err)
		}
	}
	if op.Len() != 3 {
		t.Errorf("Len = %d, want 3", op.Len())
	}
	if c, ok := op.Get(0); !ok || c != 4 {
		t.Errorf("Get(0) = %d, %v; want 4, true", c, ok)
	}
	op.Reset()
	op.EndInput()
	if op.Len() != 0 || n != 0 {
		t.Errorf("after Reset: Len = %d, emitted %d; want 0, 0", op.Len(), n)
	}
	if _, ok := op.Get(0); ok {
		t.Error("Get after Reset: ok")
	}
}

func TestEmitModeString(t *testing.T) {
	for m, want := range map[EmitMode]string{EmitPerBatch: "per-batch", EmitEveryUpdate: "every-update", EmitAtEnd: "at-end", 9: "emit-mode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("EmitMode(%d).String() = %q, want %q", m, got, want)
		}
	}
}

func TestCountMergeAndReduceMerge(t *testing.T) {
	if m, ok := agg.Count[int]().(Merger[int64]); !ok || m.Merge(2, 3) != 5 {
		t.Error("Count does not merge 2 and 3 into 5")
	}
	r := agg.Reduce(func(a, b int) int { return a + b })
	m, ok := r.(Merger[agg.Reduced[int]])
	if !ok {
		t.Fatal("Reduce is not a Merger")
	}
	one := agg.Reduced[int]{Value: 1, Set: true}
	tests := []struct{ a, b, want agg.Reduced[int] }{
		{agg.Reduced[int]{}, agg.Reduced[int]{}, agg.Reduced[int]{}},
		{one, agg.Reduced[int]{}, one},
		{agg.Reduced[int]{}, one, one},
		{one, one, agg.Reduced[int]{Value: 2, Set: true}},
	}
	for _, tt := range tests {
		if got := m.Merge(tt.a, tt.b); got != tt.want {
			t.Errorf("Merge(%+v, %+v) = %+v, want %+v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestAggregateMerge checks that a merged partial (local aggregation) counts as the records
// it stands for: per batch and per update, with the latest time, and that an aggregator
// that does not merge refuses partials.
func TestAggregateMerge(t *testing.T) {
	type step struct {
		key     string
		partial int // a partial sum merged; 0: an insert of value 1 instead
		ts      int64
	}
	tests := []struct {
		name  string
		mode  EmitMode
		steps []step
		want  []string
	}{
		{name: "per batch", mode: EmitPerBatch,
			steps: []step{{"a", 0, 1}, {"a", 5, 9}, {"b", 3, 4}, {"a", 0, 2}},
			want:  []string{"a=7@9", "b=3@4"}},
		{name: "every update", mode: EmitEveryUpdate,
			steps: []step{{"a", 0, 1}, {"a", 5, 9}, {"b", 3, 4}},
			want:  []string{"a=1@1", "a=6@9", "b=3@4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			op := NewAggregateOperator(func(kv KV[string, int]) string { return kv.Key }, Aggregator[KV[string, int], int, int](mergingSum{onValues[int, int]{agg.Sum[int]()}}), tt.mode, func(r Record[KV[string, int]]) {
				got = append(got, fmt.Sprintf("%s=%d@%d", r.Value.Key, r.Value.Value, r.Time))
			})
			for _, s := range tt.steps {
				var err error
				if s.partial == 0 {
					err = op.Process(Record[KV[string, int]]{Value: KV[string, int]{Key: s.key, Value: 1}, Time: s.ts})
				} else {
					err = op.Merge(s.key, s.partial, s.ts)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			op.EndBatch()
			if !slices.Equal(got, tt.want) {
				t.Errorf("emitted %v; want %v", got, tt.want)
			}
		})
	}
	noMerge := NewAggregateOperator(func(v int) int { return v }, Aggregator[int, int, int](countOnly{}), EmitPerBatch, func(Record[KV[int, int]]) {})
	if err := noMerge.Merge(1, 2, 0); err == nil {
		t.Error("an aggregator without Merge took a partial")
	}
}

// mergingSum is sumOfValues that merges.
type mergingSum struct{ onValues[int, int] }

func (mergingSum) Merge(a, b int) int { return a + b }

// countOnly counts and does not merge.
type countOnly struct{}

func (countOnly) Zero() int              { return 0 }
func (countOnly) Add(acc int, _ int) int { return acc + 1 }
func (countOnly) Result(acc int) int     { return acc }
