package operator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eddyflow/eddy/stream"
)

// A process operator restored from a snapshot at any point goes on exactly as the original:
// its Value, Map and List states decode on first read, and its timers fire as they would
// have.
func TestProcessSnapshotRestore(t *testing.T) {
	count := stream.NewValueState[int]("count")
	perTag := stream.NewMapState[string, int]("per-tag")
	recent := stream.NewListState[int]("recent")
	fn := KeyedProcess[string, snapEvent, string]{
		OnRecord: func(ctx stream.Context[string], e snapEvent, out stream.Emitter[string]) error {
			n, _ := count.Get(ctx)
			count.Set(ctx, n+1)
			tag := fmt.Sprint("t", e.V%3)
			c, _ := perTag.Get(ctx, tag)
			perTag.Put(ctx, tag, c+e.V)
			recent.Append(ctx, e.V)
			if n%4 == 0 {
				ctx.RegisterEventTimer(ctx.Timestamp() + 500)
				ctx.RegisterTimer(ctx.Now().Add(time.Second))
			}
			out.Emit(fmt.Sprintf("%s n=%d tag=%s:%d", ctx.Key(), n+1, tag, c+e.V))
			return nil
		},
		OnEventTimer: func(ctx stream.Context[string], ts int64, out stream.Emitter[string]) error {
			n, _ := count.Get(ctx)
			out.Emit(fmt.Sprintf("%s event %d n=%d last=%v", ctx.Key(), ts, n, recent.Items(ctx)))
			recent.Clear(ctx)
			return nil
		},
		OnTimer: func(ctx stream.Context[string], at time.Time, out stream.Emitter[string]) error {
			out.Emit(fmt.Sprintf("%s proc %d tags=%d", ctx.Key(), at.UnixMilli(), perTag.Len(ctx)))
			return nil
		},
	}
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 5))
			var recs []Record[snapEvent]
			for i := range 300 {
				recs = append(recs, Record[snapEvent]{Value: snapEvent{fmt.Sprint("k", rng.IntN(5)), rng.IntN(10)}, Time: int64(i * 100)})
			}
			var out1, out2 []string
			key := func(e snapEvent) string { return e.Key }
			op1 := NewProcessOperator(key, fn, NewEmitter(func(r Record[string]) { out1 = append(out1, r.Value) }, nil))
			op2 := NewProcessOperator(key, fn, NewEmitter(func(r Record[string]) { out2 = append(out2, r.Value) }, nil))
			drive := func(op *ProcessOperator[string, snapEvent, string], r Record[snapEvent], i int) {
				now := time.UnixMilli(int64(i) * 50)
				if err := op.Process(r, now); err != nil {
					t.Fatal(err)
				}
				op.Advance(r.Time - 300)
				for {
					fired, err := op.FireEventTimer(now)
					if err != nil {
						t.Fatal(err)
					}
					if !fired {
						break
					}
				}
				for {
					fired, err := op.FireTimer(now)
					if err != nil {
						t.Fatal(err)
					}
					if !fired {
						break
					}
				}
			}
			at := rng.IntN(len(recs))
			for i, r := range recs[:at] {
				drive(op1, r, i)
			}
			snap, err := op1.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if err := op2.Restore(snap); err != nil {
				t.Fatal(err)
			}
			out1 = nil
			for i, r := range recs[at:] {
				drive(op1, r, at+i)
				drive(op2, r, at+i)
			}
			slices.Sort(out1)
			slices.Sort(out2)
			if !slices.Equal(out1, out2) {
				t.Errorf("after restoring at record %d the outputs differ:\noriginal %q\nrestored %q", at, out1, out2)
			}
		})
	}
}
