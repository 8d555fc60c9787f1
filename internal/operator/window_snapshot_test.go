package operator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eddyflow/eddy/stream"
)

type snapEvent struct {
	Key string
	V   int
}

type snapSum struct{}

func (snapSum) Zero() int                      { return 0 }
func (snapSum) Add(a int, e snapEvent) int     { return a + e.V }
func (snapSum) Merge(a, b int) int             { return a + b }
func (snapSum) Result(a int) int               { return a }
func (snapSum) Retract(a int, e snapEvent) int { return a - e.V }

// An operator restored from a snapshot taken at any point goes on exactly as the original:
// the same firings, re-firings and late records for the rest of the input.
func TestWindowSnapshotRestore(t *testing.T) {
	kinds := []struct {
		name string
		w    stream.WindowAssigner
		opts WindowOptions
	}{
		{"tumbling", stream.Tumbling(5 * time.Second), WindowOptions{Lateness: 3 * time.Second}},
		{"hopping changelog", stream.Hopping(6*time.Second, 2*time.Second), WindowOptions{Lateness: 2 * time.Second, Changelog: true}},
		{"session", stream.Session(time.Second), WindowOptions{Lateness: 2 * time.Second}},
		{"sliding", stream.Sliding(2 * time.Second), WindowOptions{Lateness: time.Second}},
		{"count purge", stream.Tumbling(5 * time.Second), WindowOptions{Trigger: stream.CountTrigger(3).Purging()}},
	}
	for _, k := range kinds {
		for seed := range uint64(20) {
			t.Run(fmt.Sprintf("%s/%d", k.name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 9))
				var recs []Record[snapEvent]
				var ts int64
				for range 400 {
					ts += rng.Int64N(300)
					recs = append(recs, Record[snapEvent]{Value: snapEvent{fmt.Sprint("k", rng.IntN(4)), rng.IntN(10)}, Time: ts - rng.Int64N(4000)})
				}
				var out1, out2 []string
				var cut *[]string = &out1
				emit := func(dst *[]string) func(Record[WindowResult[string, int]]) {
					return func(r Record[WindowResult[string, int]]) {
						*dst = append(*dst, fmt.Sprintf("%s %d-%d %d %v", r.Value.Key, r.Value.Start, r.Value.End, r.Value.Value, r.Kind))
					}
				}
				late := func(dst *[]string) func(Record[snapEvent]) {
					return func(r Record[snapEvent]) { *dst = append(*dst, fmt.Sprintf("late %v@%d", r.Value, r.Time)) }
				}
				key := func(e snapEvent) string { return e.Key }
				op1, err := NewWindowOperator(key, k.w, snapSum{}, k.opts, emit(cut), late(cut))
				if err != nil {
					t.Fatal(err)
				}
				at := rng.IntN(len(recs))
				var maxTS int64 = MinWatermark
				feed := func(op *WindowOperator[string, snapEvent, int, int], r Record[snapEvent]) {
					if err := op.Process(r); err != nil {
						t.Fatal(err)
					}
				}
				for i, r := range recs[:at] {
					feed(op1, r)
					maxTS = max(maxTS, r.Time)
					if i%5 == 0 {
						op1.Advance(maxTS - 1000)
					}
				}
				snap, err := op1.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				out1 = nil // compare what comes after the snapshot only
				op2, err := NewWindowOperator(key, k.w, snapSum{}, k.opts, emit(&out2), late(&out2))
				if err != nil {
					t.Fatal(err)
				}
				if err := op2.Restore(snap, 0); err != nil {
					t.Fatal(err)
				}
				for i, r := range recs[at:] {
					feed(op1, r)
					feed(op2, r)
					maxTS = max(maxTS, r.Time)
					if i%5 == 0 {
						op1.Advance(maxTS - 1000)
						op2.Advance(maxTS - 1000)
					}
				}
				op1.Advance(MaxWatermark)
				op2.Advance(MaxWatermark)
				slices.Sort(out1)
				slices.Sort(out2)
				if !slices.Equal(out1, out2) {
					t.Errorf("after restoring at record %d, the outputs differ:\noriginal %q\nrestored %q", at, out1, out2)
				}
			})
		}
	}
}
