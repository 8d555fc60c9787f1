package graph_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

type tick struct {
	Key   string
	TS    int64
	Value int
}

type countSum struct{}

type cs struct{ Count, Sum int }

func (countSum) Zero() cs                { return cs{} }
func (countSum) Add(a cs, t tick) cs     { return cs{a.Count + 1, a.Sum + t.Value} }
func (countSum) Merge(a, b cs) cs        { return cs{a.Count + b.Count, a.Sum + b.Sum} }
func (countSum) Result(a cs) cs          { return a }
func (countSum) Retract(a cs, t tick) cs { return cs{a.Count - 1, a.Sum - t.Value} }

type winKey struct {
	Key        string
	Start, End int64
}

// referenceWindows aggregates every tick into its windows directly: what the final firings
// must be when no record is late.
func referenceWindows(ticks []tick, w string, size, slide int64) map[winKey]cs {
	out := map[winKey]cs{}
	switch w {
	case "session":
		byKey := map[string][]tick{}
		for _, t := range ticks {
			byKey[t.Key] = append(byKey[t.Key], t)
		}
		for k, ts := range byKey {
			// Sort by time, then cut where the gap is larger than size.
			sorted := append([]tick(nil), ts...)
			for i := 1; i < len(sorted); i++ {
				for j := i; j > 0 && sorted[j].TS < sorted[j-1].TS; j-- {
					sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
				}
			}
			start, end, acc := sorted[0].TS, sorted[0].TS+size, cs{}
			for _, t := range sorted {
				if t.TS > end {
					out[winKey{k, start, end}] = acc
					start, acc = t.TS, cs{}
				}
				end = max(end, t.TS+size)
				acc = cs{acc.Count + 1, acc.Sum + t.Value}
			}
			out[winKey{k, start, end}] = acc
		}
	default:
		for _, t := range ticks {
			for start := (t.TS/slide)*slide - size + slide; start <= t.TS; start += slide {
				if start+size > t.TS {
					k := winKey{t.Key, start, start + size}
					a := out[k]
					out[k] = cs{a.Count + 1, a.Sum + t.Value}
				}
			}
		}
	}
	return out
}

// For the same input, a window stage's final results do not depend on the parallelism or
// the batch size: only how often and when windows fire in between does. Lateness covers the
// whole input here, so that no record is late whatever the interleaving of the splits.
func TestWindowResultsIndependentOfParallelismAndBatchSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var ticks []tick
	var ts int64
	for range 3000 {
		ts += rng.Int64N(400)
		jitter := rng.Int64N(3000) // out of order by up to 3s
		ticks = append(ticks, tick{Key: fmt.Sprintf("k%d", rng.IntN(7)), TS: max(0, ts-jitter), Value: rng.IntN(100)})
	}
	modes := []struct {
		name        string
		windows     stream.WindowAssigner
		size, slide int64
	}{
		{"tumbling", stream.Tumbling(5 * time.Second), 5000, 5000},
		{"hopping", stream.Hopping(6*time.Second, 2*time.Second), 6000, 2000},
		{"session", stream.Session(700 * time.Millisecond), 700, 0},
	}
	for _, m := range modes {
		want := referenceWindows(ticks, m.name, m.size, m.slide)
		for _, p := range []int{1, 2, 4} {
			for _, batch := range []int{1, 7, 512} {
				t.Run(fmt.Sprintf("%s/p%d/batch%d", m.name, p, batch), func(t *testing.T) {
					g := graph.New("windows")
					src := graph.From(g, stream.Slice(ticks))
					stamped := graph.Timestamps(src, func(t tick) int64 { return t.TS }, stream.BoundedOutOfOrder[tick](time.Second))
					res := graph.Window(graph.KeyBy(stamped, func(t tick) string { return t.Key }, graph.WithCodec(stream.JSON[tick]())),
						m.windows, countSum{}, graph.Lateness(time.Hour), graph.Name("w"))
					var mu sync.Mutex
					got := map[winKey]cs{}
					res.To(stream.FuncSink(func(recs []stream.Record[stream.WindowResult[string, cs]]) error {
						mu.Lock()
						defer mu.Unlock()
						for _, r := range recs {
							got[winKey{r.Value.Key, r.Value.Start, r.Value.End}] = r.Value.Value
						}
						return nil
					}))
					late := stream.NewCollectSink[tick]()
					graph.SideOutput(res, stream.LateTag[tick]()).To(late)
					job := run(t, g, graph.Parallelism(p), graph.BatchSize(batch))
					if late.Len() != 0 {
						t.Errorf("%d late records; the lateness covers the input", late.Len())
					}
					// Session windows of other interleavings may have fired as parts that
					// later merged: only the windows of the reference count.
					for k, v := range want {
						if got[k] != v {
							t.Errorf("window %v: %+v, want %+v", k, got[k], v)
						}
					}
					if m.name != "session" && len(got) != len(want) {
						t.Errorf("%d windows fired, want %d", len(got), len(want))
					}
					if st := statsOf(t, job, "w"); st.In != int64(len(ticks)) || !st.HasWatermark {
						t.Errorf("window stats %+v: want %d in and a watermark", st, len(ticks))
					}
				})
			}
		}
	}
}

// Windows after windows: counts per key and 5s window, then the largest count per window
// over all keys, in a second window stage keyed by the window's start. The first stage's
// watermark drives the second across a keyed-to-keyed channel (128 × 128 instances).
func TestWindowsAfterWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	var ticks []tick
	for i := range 20_000 {
		ticks = append(ticks, tick{Key: fmt.Sprintf("k%d", rng.IntN(50)), TS: int64(i) * 3, Value: 1})
	}
	want := map[int64]int{} // window start → max count
	counts := map[winKey]int{}
	for _, tk := range ticks {
		counts[winKey{tk.Key, tk.TS / 5000 * 5000, tk.TS/5000*5000 + 5000}]++
	}
	for k, c := range counts {
		want[k.Start] = max(want[k.Start], c)
	}
	g := graph.New("nested")
	src := graph.From(g, stream.Slice(ticks))
	stamped := graph.Timestamps(src, func(t tick) int64 { return t.TS }, stream.Monotonous[tick]())
	perKey := graph.Window(graph.KeyBy(stamped, func(t tick) string { return t.Key }, graph.WithCodec(stream.JSON[tick]())),
		stream.Tumbling(5*time.Second), countSum{})
	type wc = stream.WindowResult[string, cs]
	top := graph.Window(graph.KeyBy(perKey, func(r wc) int64 { return r.Start }, graph.WithCodec(stream.JSON[wc]())),
		stream.Tumbling(5*time.Second), agg.Reduce(func(a, b wc) wc {
			if b.Value.Count > a.Value.Count {
				return b
			}
			return a
		}), graph.Name("top"))
	out := stream.NewCollectSink[stream.WindowResult[int64, wc]]()
	top.To(out)
	run(t, g, graph.Parallelism(2))
	got := map[int64]int{}
	for _, r := range out.Values() {
		if r.Key != r.Start {
			t.Errorf("window %d-%d holds the results of window %d", r.Start, r.End, r.Key)
		}
		got[r.Key] = r.Value.Value.Count
	}
	if len(got) != len(want) {
		t.Errorf("%d windows, want %d", len(got), len(want))
	}
	for start, c := range want {
		if got[start] != c {
			t.Errorf("window %d: max count %d, want %d", start, got[start], c)
		}
	}
}

// Both inputs of a join may come from one vertex: the stage keeps a watermark per input
// channel, and a sender that feeds both ports has a channel on each.
func TestJoinOfOneSourcesBranches(t *testing.T) {
	var ticks []tick
	for i := range 1000 {
		ticks = append(ticks, tick{Key: fmt.Sprintf("k%d", i%3), TS: int64(i) * 10, Value: i % 2})
	}
	g := graph.New("branches")
	src := graph.Timestamps(graph.From(g, stream.Slice(ticks)), func(t tick) int64 { return t.TS }, stream.Monotonous[tick]())
	even := src.Filter(func(t tick) bool { return t.Value == 0 })
	odd := src.Filter(func(t tick) bool { return t.Value == 1 })
	byKey := func(t tick) string { return t.Key }
	joined := graph.WindowJoin(graph.KeyBy(even, byKey, graph.WithCodec(stream.JSON[tick]())), graph.KeyBy(odd, byKey, graph.WithCodec(stream.JSON[tick]())),
		stream.Tumbling(time.Second), func(k string, w stream.TimeWindow, as, bs []tick, emit func(int)) { emit(len(as) + len(bs)) })
	out := stream.NewCollectSink[int]()
	joined.To(out)
	run(t, g, graph.Parallelism(2))
	total := 0
	for _, n := range out.Values() {
		total += n
	}
	if total != len(ticks) || out.Len() != 30 {
		t.Errorf("%d co-groups holding %d records; want 30 (3 keys × 10 windows) holding %d", out.Len(), total, len(ticks))
	}
}
