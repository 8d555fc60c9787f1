package graph_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/sketches"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// lgEvent is a record of the local-aggregation tests: a key, a value and an lgEvent time.
type lgEvent struct {
	Key, V, TS int64
}

var lgCodec = graph.WithCodec(stream.JSON[lgEvent]())

// lgRandom returns n events over keys keys, in lgEvent-time order but for some disorder,
// with a retraction of an earlier lgEvent of the same key at about every retractEvery-th
// place (0: none).
func lgRandom(rng *rand.Rand, n, keys, retractEvery int) []stream.Record[lgEvent] {
	recs := make([]stream.Record[lgEvent], 0, n)
	for i := range n {
		if retractEvery > 0 && i > 0 && rng.IntN(retractEvery) == 0 {
			r := recs[rng.IntN(len(recs))]
			if r.Kind == stream.Insert {
				r.Kind = stream.Retract
				recs = append(recs, r)
				continue
			}
		}
		e := lgEvent{Key: rng.Int64N(int64(keys)), V: rng.Int64N(1000) - 300, TS: int64(i) + rng.Int64N(50)}
		recs = append(recs, stream.Record[lgEvent]{Value: e})
	}
	return recs
}

// lgSource reads recs in splits: split j of p gets records j, j+p, ... in order (so each
// key's records keep their order within a split, and the splits interleave).
type lgSource struct{ recs []stream.Record[lgEvent] }

func (s lgSource) Splits(p int) ([]stream.Split[lgEvent], error) {
	out := make([]stream.Split[lgEvent], p)
	for j := range p {
		var mine []stream.Record[lgEvent]
		for i := j; i < len(s.recs); i += p {
			mine = append(mine, s.recs[i])
		}
		out[j] = &lgSplit{recs: mine}
	}
	return out, nil
}

type lgSplit struct {
	recs []stream.Record[lgEvent]
	pos  int
	// gate, when set, stops the split before record gate.at until gate.open is closed.
	gate *gate
}

type gate struct {
	at     int
	open   chan struct{}
	atGate chan struct{}
	once   sync.Once
	mu     sync.Mutex
	seeks  []int
}

func (sp *lgSplit) Read(ctx context.Context, max int, out stream.Output[lgEvent]) (int, error) {
	if sp.pos >= len(sp.recs) {
		return 0, io.EOF
	}
	end := min(len(sp.recs), sp.pos+max)
	if g := sp.gate; g != nil {
		if sp.pos < g.at {
			end = min(end, g.at)
		} else {
			select {
			case <-g.open:
			default:
				g.once.Do(func() { close(g.atGate) })
				select {
				case <-g.open:
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
				return 0, nil
			}
		}
	}
	for _, r := range sp.recs[sp.pos:end] {
		out.Emit(r)
	}
	n := end - sp.pos
	sp.pos = end
	return n, nil
}

func (sp *lgSplit) Offset() ([]byte, error) { return binary.AppendUvarint(nil, uint64(sp.pos)), nil }

func (sp *lgSplit) Seek(off []byte) error {
	pos, n := binary.Uvarint(off)
	if n <= 0 || pos > uint64(len(sp.recs)) {
		return fmt.Errorf("event split: bad offset %x", off)
	}
	sp.pos = int(pos)
	if g := sp.gate; g != nil {
		g.mu.Lock()
		g.seeks = append(g.seeks, sp.pos)
		g.mu.Unlock()
	}
	return nil
}

func (sp *lgSplit) Close() error { return nil }

// finals keeps the last result per key: a key's results come from one key group, in order.
type finals[R any] struct {
	mu      sync.Mutex
	last    map[int64]stream.Record[R]
	updates atomic.Int64
}

func newFinals[R any]() *finals[R] { return &finals[R]{last: map[int64]stream.Record[R]{}} }

func (f *finals[R]) WriteBatch(recs []stream.Record[stream.KV[int64, R]]) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range recs {
		f.last[r.Value.Key] = stream.Record[R]{Value: r.Value.Value, Time: r.Time, Kind: r.Kind}
	}
	f.updates.Add(int64(len(recs)))
	return nil
}

func (f *finals[R]) Close() error { return nil }

// setup is one random shape of a job: batch size, parallelism, key groups.
type setup struct {
	batch, parallelism, groups int
}

func (s setup) String() string {
	return fmt.Sprintf("batch=%d/parallelism=%d/groups=%d", s.batch, s.parallelism, s.groups)
}

// runFinals runs recs through a timestamped KeyBy and the aggregator, with the stage
// options, and returns each key's last result.
func runFinals[A, R any](t *testing.T, recs []stream.Record[lgEvent], s setup, a stream.Aggregator[lgEvent, A, R], opts ...graph.Option) (map[int64]stream.Record[R], int64) {
	t.Helper()
	g := graph.New("localagg")
	src := graph.From(g, stream.Source[lgEvent](lgSource{recs}), graph.Name("src"))
	stamped := graph.Timestamps(src, func(e lgEvent) int64 { return e.TS }, stream.BoundedOutOfOrder[lgEvent](100*time.Millisecond))
	out := newFinals[R]()
	graph.Aggregate(graph.KeyBy(stamped, func(e lgEvent) int64 { return e.Key }, lgCodec), a, append(opts, graph.Name("agg"))...).To(out)
	run(t, g, graph.BatchSize(s.batch), graph.Parallelism(s.parallelism), graph.MaxKeyGroups(s.groups))
	return out.last, out.updates.Load()
}

// independent computes each key's final result and latest lgEvent time with a plain loop:
// fold applies one record (insert or retract) to the key's value.
func independent[V any](recs []stream.Record[lgEvent], zero V, fold func(V, stream.Record[lgEvent]) V) map[int64]stream.Record[V] {
	out := map[int64]stream.Record[V]{}
	for _, r := range recs {
		cur, ok := out[r.Value.Key]
		if !ok {
			cur.Value = zero
		}
		cur.Value = fold(cur.Value, r)
		cur.Time = max(cur.Time, r.Value.TS)
		out[r.Value.Key] = cur
	}
	return out
}

func sign(r stream.Record[lgEvent]) int64 {
	if r.Kind == stream.Retract {
		return -1
	}
	return 1
}

// onValue makes an aggregator of int64 values one of events.
type onValue[A, R any] struct {
	a stream.Aggregator[int64, A, R]
}

func (o onValue[A, R]) Zero() A                { return o.a.Zero() }
func (o onValue[A, R]) Add(acc A, e lgEvent) A { return o.a.Add(acc, e.V) }
func (o onValue[A, R]) Result(acc A) R         { return o.a.Result(acc) }
func (o onValue[A, R]) Merge(x, y A) A         { return o.a.(stream.Merger[A]).Merge(x, y) }

// onRetractingValue is onValue for aggregators that retract.
type onRetractingValue[A, R any] struct{ onValue[A, R] }

func (o onRetractingValue[A, R]) Retract(acc A, e lgEvent) A {
	return o.a.(stream.Retracter[int64, A]).Retract(acc, e.V)
}

// TestLocalAggregationMatchesPlain is the property test of local aggregation: random input
// (with retractions for the aggregators that take them), random batch sizes, parallelism
// and key groups; every key's final result and time must be the same with local
// aggregation (the default) as without, and equal to a plain loop's.
func TestLocalAggregationMatchesPlain(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 17))
		s := setup{batch: 1 + rng.IntN(700), parallelism: 1 + rng.IntN(4), groups: 1 + rng.IntN(16)}
		if seed == 0 {
			s.batch = 1 // every record its own batch and mini-batch bound of 32 keys
		}
		n, keys := 2000+rng.IntN(6000), 1+rng.IntN(400)
		withRetracts := lgRandom(rng, n, keys, 10)
		inserts := lgRandom(rng, n, keys, 0)
		t.Run(fmt.Sprintf("seed=%d/%s/n=%d/keys=%d", seed, s, n, keys), func(t *testing.T) {
			check := func(t *testing.T, name string, same func() error) {
				t.Run(name, func(t *testing.T) {
					if err := same(); err != nil {
						t.Error(err)
					}
				})
			}
			check(t, "count", func() error {
				want := independent(withRetracts, int64(0), func(c int64, r stream.Record[lgEvent]) int64 { return c + sign(r) })
				return compare(t, withRetracts, s, onRetractingValue[int64, int64]{onValue[int64, int64]{agg.Count[int64]()}}, want)
			})
			check(t, "sum", func() error {
				want := independent(withRetracts, int64(0), func(c int64, r stream.Record[lgEvent]) int64 { return c + sign(r)*r.Value.V })
				return compare(t, withRetracts, s, onRetractingValue[int64, int64]{onValue[int64, int64]{agg.Sum[int64]()}}, want)
			})
			check(t, "avg", func() error {
				sums := independent(withRetracts, [2]int64{}, func(c [2]int64, r stream.Record[lgEvent]) [2]int64 {
					return [2]int64{c[0] + sign(r)*r.Value.V, c[1] + sign(r)}
				})
				want := map[int64]stream.Record[float64]{}
				for k, sc := range sums {
					avg := 0.0
					if sc.Value[1] != 0 {
						avg = float64(sc.Value[0]) / float64(sc.Value[1])
					}
					want[k] = stream.Record[float64]{Value: avg, Time: sc.Time}
				}
				return compare(t, withRetracts, s, onRetractingValue[agg.Mean, float64]{onValue[agg.Mean, float64]{agg.Avg[int64]()}}, want)
			})
			check(t, "min", func() error {
				want := independent(inserts, int64(1<<62), func(c int64, r stream.Record[lgEvent]) int64 { return min(c, r.Value.V) })
				return compare(t, inserts, s, onValue[agg.Reduced[int64], int64]{agg.Min[int64]()}, want)
			})
			check(t, "max", func() error {
				want := independent(inserts, int64(-1<<62), func(c int64, r stream.Record[lgEvent]) int64 { return max(c, r.Value.V) })
				return compare(t, inserts, s, onValue[agg.Reduced[int64], int64]{agg.Max[int64]()}, want)
			})
			check(t, "reduce", func() error {
				// An associative reduce (what graph.Reduce asks for): the sum of squares.
				want := independent(inserts, int64(0), func(c int64, r stream.Record[lgEvent]) int64 { return c + r.Value.V*r.Value.V })
				red := agg.Reduce(func(a, b int64) int64 { return a + b })
				return compare(t, inserts, s, squares{red}, want)
			})
			check(t, "distinct sketch", func() error {
				// Sketches merge: with partials and without, the estimate is near the true
				// number of distinct values.
				hll, err := sketches.ApproxDistinct(func(e lgEvent) string { return fmt.Sprint(e.V) }, sketches.HyperLogLogConfig{Precision: 12})
				if err != nil {
					return err
				}
				exact := map[int64]map[int64]bool{}
				for _, r := range inserts {
					if exact[r.Value.Key] == nil {
						exact[r.Value.Key] = map[int64]bool{}
					}
					exact[r.Value.Key][r.Value.V] = true
				}
				for _, opts := range [][]graph.Option{nil, {graph.LocalAggregation(false)}} {
					got, _ := runFinals(t, inserts, s, hll, opts...)
					if len(got) != len(exact) {
						return fmt.Errorf("options %v: %d keys, want %d", opts, len(got), len(exact))
					}
					for k, vs := range exact {
						n, est := float64(len(vs)), float64(got[k].Value)
						if est < n*0.9 || est > n*1.1 {
							return fmt.Errorf("options %v: key %d: estimate %v of %v distinct values", opts, k, est, n)
						}
					}
				}
				return nil
			})
		})
	}
}

// squares folds the squares of the values with an associative reduce (a Reduce's
// aggregator), which merges.
type squares struct {
	red stream.Aggregator[int64, agg.Reduced[int64], int64]
}

func (s squares) Zero() agg.Reduced[int64] { return s.red.Zero() }
func (s squares) Add(acc agg.Reduced[int64], e lgEvent) agg.Reduced[int64] {
	return s.red.Add(acc, e.V*e.V)
}
func (s squares) Result(acc agg.Reduced[int64]) int64 { return s.red.Result(acc) }
func (s squares) Merge(x, y agg.Reduced[int64]) agg.Reduced[int64] {
	return s.red.(stream.Merger[agg.Reduced[int64]]).Merge(x, y)
}

// compare runs a with local aggregation and without, and checks both against want.
func compare[A, R comparable](t *testing.T, recs []stream.Record[lgEvent], s setup, a stream.Aggregator[lgEvent, A, R], want map[int64]stream.Record[R]) error {
	local, localUpdates := runFinals(t, recs, s, a)
	plain, plainUpdates := runFinals(t, recs, s, a, graph.LocalAggregation(false))
	if d := diffFinals(local, want); d != "" {
		return fmt.Errorf("with local aggregation: %s", d)
	}
	if d := diffFinals(plain, want); d != "" {
		return fmt.Errorf("without local aggregation: %s", d)
	}
	if localUpdates < int64(len(want)) || plainUpdates < int64(len(want)) {
		return fmt.Errorf("%d updates with local aggregation, %d without, %d keys: want at least one per key", localUpdates, plainUpdates, len(want))
	}
	return nil
}

func diffFinals[R comparable](got, want map[int64]stream.Record[R]) string {
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok || g.Value != w.Value || g.Time != w.Time {
			diffs = append(diffs, fmt.Sprintf("key %d: got %v (%t), want %v", k, g, ok, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("key %d: got %v, want none", k, got[k]))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	slices.Sort(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return fmt.Sprint(diffs)
}

// TestLocalAggregationRestoresExactly checks local aggregation across a restore: the source
// stops at a gate, a savepoint is taken there (partials held upstream must be in it, sent
// before the barrier), then a user function before the KeyBy fails once and RestartStage
// restores from the savepoint. Every key's count and sum must be exact, on the memory and on
// the Badger state backend.
func TestLocalAggregationRestoresExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	recs := lgRandom(rng, 6000, 300, 10)
	const gateAt, failAt = 2000, 4500
	untimed := slices.Clone(recs)
	for i := range untimed {
		untimed[i].Value.TS = 0
	}
	wantCount := independent(untimed, int64(0), func(c int64, r stream.Record[lgEvent]) int64 { return c + sign(r) })
	wantSum := independent(untimed, int64(0), func(c int64, r stream.Record[lgEvent]) int64 { return c + sign(r)*r.Value.V })
	for _, backend := range []string{"memory", "badger"} {
		t.Run(backend, func(t *testing.T) {
			store, err := persistence.OpenDirCheckpoints(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			gt := &gate{at: gateAt, open: make(chan struct{}), atGate: make(chan struct{})}
			g := graph.New("localagg-restore")
			src := graph.From(g, stream.Source[lgEvent](lgGated{recs: recs, gate: gt}), graph.Name("src"))
			var failed atomic.Bool
			checked := graph.Map(src, func(e lgEvent) lgEvent {
				if e == recs[failAt].Value && !failed.Swap(true) {
					panic("flaky record")
				}
				return e
			}, graph.Name("flaky"))
			// No timestamps, so no watermarks: nothing but the barrier sends the partials held
			// at the gate.
			perKey := graph.KeyBy(checked, func(e lgEvent) int64 { return e.Key }, lgCodec)
			counts, sums := newFinals[int64](), newFinals[int64]()
			graph.Aggregate(perKey, onRetractingValue[int64, int64]{onValue[int64, int64]{agg.Count[int64]()}}, graph.Name("count")).To(counts)
			graph.Aggregate(perKey, onRetractingValue[int64, int64]{onValue[int64, int64]{agg.Sum[int64]()}}, graph.Name("sum")).To(sums)
			opts := []graph.JobOption{graph.Parallelism(1), graph.MaxKeyGroups(4), graph.BatchSize(64),
				// No linger tick: the partials held at the gate go out only before the barrier.
				graph.Linger(time.Hour),
				graph.Checkpoints(store, time.Hour), graph.OnError(actor.RestartStage)}
			if backend == "badger" {
				db, err := persistence.OpenBadger(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				opts = append(opts, graph.BadgerState(db))
			}
			job := build(t, g, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- job.Run(ctx) }()
			select {
			case <-gt.atGate:
			case err := <-done:
				t.Fatalf("Run returned %v before the source reached the gate", err)
			}
			if err := job.Savepoint(ctx, "at-gate"); err != nil {
				t.Fatalf("savepoint at the gate: %v", err)
			}
			close(gt.open)
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			gt.mu.Lock()
			seeks := slices.Clone(gt.seeks)
			gt.mu.Unlock()
			if !slices.Equal(seeks, []int{gateAt}) {
				t.Fatalf("the source rewound to %v; want once to the gate, %d", seeks, gateAt)
			}
			if d := diffFinals(counts.last, wantCount); d != "" {
				t.Errorf("counts: %s", d)
			}
			if d := diffFinals(sums.last, wantSum); d != "" {
				t.Errorf("sums: %s", d)
			}
		})
	}
}

// lgGated is recs in one split that stops at the gate.
type lgGated struct {
	recs []stream.Record[lgEvent]
	gate *gate
}

func (s lgGated) Splits(int) ([]stream.Split[lgEvent], error) {
	return []stream.Split[lgEvent]{&lgSplit{recs: s.recs, gate: s.gate}}, nil
}
