package sketches

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
)

type event struct {
	Key, Item string
	Value     float64
	At        int64
}

// The four aggregators in session windows, which merge accumulators: the result of a
// session built from merged parts equals that of one sketch of all its records.
func TestAggregatorsInSessionWindows(t *testing.T) {
	var evs []event
	// Two sessions of key k: records 0..99 at 10 ms steps arrive in an order that opens
	// separate sessions first and bridges them later; then a gap, then a second session.
	for i := range 100 {
		j := (i * 37) % 100 // a permutation, out of order
		evs = append(evs, event{Key: "k", Item: "i" + strconv.Itoa(j%13), Value: float64(j), At: int64(j) * 10})
	}
	evs = append(evs, event{Key: "k", Item: "late", Value: 1000, At: 100_000})
	key := func(e event) string { return e.Key }
	distinct, _ := ApproxDistinct(func(e event) string { return e.Item }, HyperLogLogConfig{})
	top, _ := ApproxTopK(func(e event) string { return e.Item }, 3, TopKConfig{})
	quant, _ := ApproxQuantiles(func(e event) float64 { return e.Value }, []float64{0, 0.5, 1}, QuantilesConfig{})
	freq, _ := ApproxFrequency(func(e event) string { return e.Item }, CountMinConfig{})

	var dres []uint64
	dop, err := operator.NewWindowOperator(key, stream.Session(50*time.Millisecond), distinct, operator.WindowOptions{},
		func(r stream.Record[stream.WindowResult[string, uint64]]) { dres = append(dres, r.Value.Value) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tres [][]Item
	top3, _ := operator.NewWindowOperator(key, stream.Session(50*time.Millisecond), top, operator.WindowOptions{},
		func(r stream.Record[stream.WindowResult[string, []Item]]) { tres = append(tres, r.Value.Value) }, nil)
	var qres [][]float64
	qop, _ := operator.NewWindowOperator(key, stream.Session(50*time.Millisecond), quant, operator.WindowOptions{},
		func(r stream.Record[stream.WindowResult[string, []float64]]) { qres = append(qres, r.Value.Value) }, nil)
	var fres []*CountMin
	fop, _ := operator.NewWindowOperator(key, stream.Session(50*time.Millisecond), freq, operator.WindowOptions{},
		func(r stream.Record[stream.WindowResult[string, *CountMin]]) { fres = append(fres, r.Value.Value) }, nil)
	for _, e := range evs {
		r := stream.Record[event]{Value: e, Time: e.At}
		for _, err := range []error{dop.Process(r), top3.Process(r), qop.Process(r), fop.Process(r)} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	dop.Advance(stream.MaxWatermark)
	top3.Advance(stream.MaxWatermark)
	qop.Advance(stream.MaxWatermark)
	fop.Advance(stream.MaxWatermark)

	if !slices.Equal(dres, []uint64{13, 1}) {
		t.Errorf("distinct per session = %v, want [13 1]", dres)
	}
	// i0 holds j = 0, 13, ..., 91: 8 records; i1..i9 hold 8; i10..i12 hold 7.
	if len(tres) != 2 || len(tres[0]) != 3 || tres[0][0] != (Item{Item: "i0", Count: 8}) || tres[1][0] != (Item{Item: "late", Count: 1}) {
		t.Errorf("top-3 per session = %v", tres)
	}
	if len(qres) != 2 || qres[0][0] != 0 || qres[0][2] != 99 || qres[0][1] < 48 || qres[0][1] > 51 || qres[1][1] != 1000 {
		t.Errorf("quantiles per session = %v", qres)
	}
	if len(fres) != 2 || fres[0].Estimate("i0") != 8 || fres[0].N() != 100 || fres[1].Estimate("late") != 1 {
		t.Errorf("frequencies per session: %d results", len(fres))
	}
	// Retractions are refused: a sketch cannot take an item back.
	if err := dop.Process(stream.Record[event]{Value: evs[0], Kind: stream.Retract}); err == nil {
		t.Error("a retraction into a sketch window was accepted")
	}
}

// Results do not change when the accumulator goes on (a changelog keeps the last result).
func TestAggregatorResultsAreCopies(t *testing.T) {
	top, _ := ApproxTopK(func(s string) string { return s }, 2, TopKConfig{})
	freq, _ := ApproxFrequency(func(s string) string { return s }, CountMinConfig{})
	ta, fa := top.Add(top.Zero(), "a"), freq.Add(freq.Zero(), "a")
	tr, fr := top.Result(ta), freq.Result(fa)
	top.Add(ta, "a")
	freq.Add(fa, "a")
	if tr[0].Count != 1 || fr.Estimate("a") != 1 {
		t.Errorf("an earlier result changed: top %v, frequency %d", tr, fr.Estimate("a"))
	}
	// Merge never changes its second argument.
	other := top.Add(top.Zero(), "b")
	m := top.Merge(top.Zero(), other)
	top.Add(m, "b")
	if c, _, _ := other.Count("b"); c != 1 {
		t.Errorf("merge changed its second argument: count %d", c)
	}
}

func TestAggregatorErrors(t *testing.T) {
	id := func(s string) string { return s }
	if _, err := ApproxDistinct[string](nil, HyperLogLogConfig{}); err == nil {
		t.Error("nil id accepted")
	}
	if _, err := ApproxDistinct(id, HyperLogLogConfig{Precision: 30}); err == nil {
		t.Error("precision 30 accepted")
	}
	if _, err := ApproxTopK(id, 0, TopKConfig{}); err == nil {
		t.Error("k 0 accepted")
	}
	if _, err := ApproxQuantiles(func(string) float64 { return 0 }, []float64{1.5}, QuantilesConfig{}); err == nil {
		t.Error("quantile 1.5 accepted")
	}
	if _, err := ApproxFrequency(id, CountMinConfig{Epsilon: 2}); err == nil {
		t.Error("epsilon 2 accepted")
	}
}

func runDedup(t *testing.T, in []event, cfg DedupConfig, opts ...graph.JobOption) []event {
	t.Helper()
	g := graph.New("dedup")
	src := graph.From(g, stream.Slice(in))
	s := src
	if cfg.EventTime {
		s = graph.Timestamps(src, func(e event) int64 { return e.At }, stream.BoundedOutOfOrder[event](time.Second))
	}
	out, err := Dedup(s, func(e event) string { return e.Key }, cfg, graph.WithCodec(stream.JSON[event]()))
	if err != nil {
		t.Fatal(err)
	}
	got := stream.NewCollectSink[event]()
	out.To(got)
	opts = append([]graph.JobOption{graph.Parallelism(2), graph.Logger(slog.New(slog.DiscardHandler))}, opts...)
	if err := g.Run(context.Background(), opts...); err != nil {
		t.Fatal(err)
	}
	return got.Values()
}

// Exact dedup never drops a new record; approximate dedup drops few, within the target.
func TestDedupAtScale(t *testing.T) {
	n := size(50_000, 10_000)
	var in []event
	for i := range n {
		in = append(in, event{Key: "id-" + strconv.Itoa(i), At: int64(i)})
		if i%2 == 0 {
			in = append(in, event{Key: "id-" + strconv.Itoa(i), At: int64(i) + 5})
		}
	}
	exact := runDedup(t, in, DedupConfig{Within: time.Hour, EventTime: true, Expected: n / 4, Buckets: 64})
	if len(exact) != n {
		t.Errorf("exact dedup kept %d records, want %d", len(exact), n)
	}
	approx := runDedup(t, in, DedupConfig{Within: time.Hour, EventTime: true, Approximate: true, Expected: n, FalsePositive: 0.01, Buckets: 64})
	lost := n - len(approx)
	t.Logf("approximate dedup: %d of %d new records dropped (%.3f%%)", lost, n, 100*float64(lost)/float64(n))
	if lost < 0 || float64(lost) > 1.5*0.01*float64(n) {
		t.Errorf("approximate dedup kept %d of %d new records", len(approx), n)
	}
	// In processing time on a clock that does not move, every repeat is within D.
	clock := stream.NewManualClock(time.UnixMilli(1_000_000))
	pt := runDedup(t, in, DedupConfig{Within: time.Minute}, graph.Clock(clock))
	if len(pt) != n {
		t.Errorf("processing-time dedup kept %d records, want %d", len(pt), n)
	}
}

// The exact behaviour in event time: D from the latest sighting, kept or dropped.
func TestDedupEventTime(t *testing.T) {
	in := []event{
		{Key: "a", At: 0},
		{Key: "a", At: 999},   // dup of 0
		{Key: "a", At: 1500},  // within D of 999 (a dropped record is still a sighting)
		{Key: "a", At: 2500},  // 1000 after 1500: not within D
		{Key: "b", At: 2600},  // new
		{Key: "a", At: 2000},  // out of order: within D of 2500
		{Key: "b", At: 10000}, // long after
		{Key: "a", At: 1900},  // out of order, far behind the latest time: within D of 2500
	}
	// One split, so that the records arrive in the order given.
	got := runDedup(t, in, DedupConfig{Within: time.Second, EventTime: true, Buckets: 4}, graph.Parallelism(1))
	var at []int64
	for _, e := range got {
		at = append(at, e.At)
	}
	slices.Sort(at)
	if want := []int64{0, 2500, 2600, 10000}; !slices.Equal(at, want) {
		t.Errorf("kept %v, want %v", at, want)
	}
}

func TestDedupConfigErrors(t *testing.T) {
	g := graph.New("x")
	src := graph.From(g, stream.Slice([]string{"a"}))
	id := func(s string) string { return s }
	for _, cfg := range []DedupConfig{{}, {Within: time.Second, FalsePositive: 2}, {Within: time.Second, Buckets: -1}} {
		if _, err := Dedup(src, id, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := Dedup[string](src, nil, DedupConfig{Within: time.Second}); err == nil {
		t.Error("nil id accepted")
	}
}

// Sketch accumulators survive a snapshot of the stage state: EncodeState uses their
// MarshalBinary, where encoding/json would write an empty object.
func TestSketchStateSnapshot(t *testing.T) {
	agg, err := ApproxDistinct[string](func(s string) string { return s }, HyperLogLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	acc := agg.Zero()
	for i := range 5000 {
		acc = agg.Add(acc, "item-"+strconv.Itoa(i))
	}
	b, err := stream.EncodeState(acc)
	if err != nil {
		t.Fatal(err)
	}
	back, err := stream.DecodeState[*HyperLogLog](b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := agg.Result(back), agg.Result(acc); got != want || want < 4900 {
		t.Errorf("distinct after a round trip %d, before %d", got, want)
	}
}
