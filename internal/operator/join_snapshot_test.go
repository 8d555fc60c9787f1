package operator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// joinRun feeds a random mix of both sides and watermarks to an operator pair (original and
// restored at a random cut) and compares what they emit after the cut.
type joinOps struct {
	a, b        func(Record[snapEvent]) error
	advance     func(int64) error
	snapshot    func() ([]byte, error)
	restoreInto func([]byte) error // into the second operator
	a2, b2      func(Record[snapEvent]) error
	advance2    func(int64) error
}

func runJoinRestore(t *testing.T, seed uint64, ops joinOps, out1, out2 *[]string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	type step struct {
		side int
		r    Record[snapEvent]
	}
	var steps []step
	var ts int64
	for range 300 {
		ts += rng.Int64N(200)
		steps = append(steps, step{rng.IntN(3), Record[snapEvent]{Value: snapEvent{fmt.Sprint("k", rng.IntN(3)), rng.IntN(9)}, Time: ts - rng.Int64N(1500)}})
	}
	apply := func(s step, a, b func(Record[snapEvent]) error, adv func(int64) error) {
		var err error
		switch s.side {
		case 0:
			err = a(s.r)
		case 1:
			err = b(s.r)
		default:
			err = adv(s.r.Time)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	at := rng.IntN(len(steps))
	for _, s := range steps[:at] {
		apply(s, ops.a, ops.b, ops.advance)
	}
	snap, err := ops.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.restoreInto(snap); err != nil {
		t.Fatal(err)
	}
	*out1 = nil
	for _, s := range steps[at:] {
		apply(s, ops.a, ops.b, ops.advance)
		apply(s, ops.a2, ops.b2, ops.advance2)
	}
	_ = ops.advance(MaxWatermark)
	_ = ops.advance2(MaxWatermark)
	slices.Sort(*out1)
	slices.Sort(*out2)
	if !slices.Equal(*out1, *out2) {
		t.Errorf("after restoring at step %d the outputs differ:\noriginal %q\nrestored %q", at, *out1, *out2)
	}
}

func TestJoinSnapshotRestore(t *testing.T) {
	key := func(e snapEvent) string { return e.Key }
	show := func(dst *[]string) func(Record[string]) {
		return func(r Record[string]) { *dst = append(*dst, fmt.Sprintf("%s@%d", r.Value, r.Time)) }
	}
	pair := func(a, b snapEvent) (string, error) { return fmt.Sprintf("%s:%d+%d", a.Key, a.V, b.V), nil }
	lookup := func(a, b snapEvent, found bool) (string, bool, error) {
		return fmt.Sprintf("%s:%d+%d/%v", a.Key, a.V, b.V, found), true, nil
	}
	for seed := range uint64(15) {
		t.Run(fmt.Sprint("interval/", seed), func(t *testing.T) {
			var out1, out2, late []string
			lateA := func(r Record[snapEvent]) { late = append(late, "a") }
			lateB := func(r Record[snapEvent]) { late = append(late, "b") }
			op1, _ := NewIntervalJoinOperator(key, key, -time.Second, 2*time.Second, pair, show(&out1), lateA, lateB)
			op2, _ := NewIntervalJoinOperator(key, key, -time.Second, 2*time.Second, pair, show(&out2), lateA, lateB)
			adv := func(op *IntervalJoinOperator[string, snapEvent, snapEvent, string]) func(int64) error {
				return func(w int64) error { op.Advance(w); return nil }
			}
			runJoinRestore(t, seed, joinOps{a: op1.ProcessA, b: op1.ProcessB, advance: adv(op1), snapshot: op1.Snapshot,
				restoreInto: op2.Restore, a2: op2.ProcessA, b2: op2.ProcessB, advance2: adv(op2)}, &out1, &out2)
		})
		t.Run(fmt.Sprint("table/", seed), func(t *testing.T) {
			var out1, out2 []string
			op1 := NewTableJoinOperator(key, key, lookup, show(&out1))
			op2 := NewTableJoinOperator(key, key, lookup, show(&out2))
			table := func(op *TableJoinOperator[string, snapEvent, snapEvent, string]) func(Record[snapEvent]) error {
				return func(r Record[snapEvent]) error { op.ProcessTable(r); return nil }
			}
			none := func(int64) error { return nil }
			runJoinRestore(t, seed, joinOps{a: op1.ProcessStream, b: table(op1), advance: none, snapshot: op1.Snapshot,
				restoreInto: op2.Restore, a2: op2.ProcessStream, b2: table(op2), advance2: none}, &out1, &out2)
		})
		t.Run(fmt.Sprint("temporal/", seed), func(t *testing.T) {
			var out1, out2 []string
			op1 := NewTemporalJoinOperator(key, key, lookup, show(&out1))
			op2 := NewTemporalJoinOperator(key, key, lookup, show(&out2))
			str := func(op *TemporalJoinOperator[string, snapEvent, snapEvent, string]) func(Record[snapEvent]) error {
				return func(r Record[snapEvent]) error { op.ProcessStream(r); return nil }
			}
			tab := func(op *TemporalJoinOperator[string, snapEvent, snapEvent, string]) func(Record[snapEvent]) error {
				return func(r Record[snapEvent]) error { op.ProcessTable(r); return nil }
			}
			runJoinRestore(t, seed, joinOps{a: str(op1), b: tab(op1), advance: op1.Advance, snapshot: op1.Snapshot,
				restoreInto: op2.Restore, a2: str(op2), b2: tab(op2), advance2: op2.Advance}, &out1, &out2)
		})
	}
}
