package graph_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

func count(n int64) stream.Source[int64] {
	return stream.Generate(n, func(i int64) int64 { return i })
}

func sorted[T interface{ ~int | ~int64 | ~string }](s []T) []T {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestRunMapFilterFlatMap(t *testing.T) {
	g := graph.New("chain")
	doubled := graph.Map(graph.From(g, count(1000), graph.Name("src")), func(v int64) int64 { return 2 * v })
	thirds := doubled.Filter(func(v int64) bool { return v%3 == 0 })
	pairs := graph.FlatMap(thirds, func(v int64, emit func(string)) {
		emit(strconv.FormatInt(v, 10))
		emit(strconv.FormatInt(-v, 10))
	})
	out := stream.NewCollectSink[string]()
	pairs.To(out)
	job := run(t, g, graph.Parallelism(3))

	var want []string
	for i := int64(0); i < 1000; i++ {
		if v := 2 * i; v%3 == 0 {
			want = append(want, strconv.FormatInt(v, 10), strconv.FormatInt(-v, 10))
		}
	}
	if got := sorted(out.Values()); !slices.Equal(got, sorted(want)) {
		t.Errorf("got %d values, want %d: %v", len(got), len(want), got)
	}
	if !out.Closed() {
		t.Error("the sink was not closed when the job ended")
	}
	st := statsOf(t, job, "src")
	if st.In != 1000 || st.Out != int64(len(want)) || st.DeadLetters != 0 {
		t.Errorf("stats %+v; want in 1000, out %d, no dead letters", st, len(want))
	}
}

func TestRunTryMapDeadLetters(t *testing.T) {
	g := graph.New("trymap")
	parsed := graph.TryMap(graph.From(g, count(100), graph.Name("src")), func(v int64) (int64, error) {
		if v%10 == 3 {
			return 0, fmt.Errorf("bad record %d", v)
		}
		return v, nil
	}, graph.Name("parse"))
	out := stream.NewCollectSink[int64]()
	parsed.To(out)
	var dl letters
	job := run(t, g, graph.Parallelism(2), dl.option())

	var want []int64
	for i := int64(0); i < 100; i++ {
		if i%10 != 3 {
			want = append(want, i)
		}
	}
	if got := sorted(out.Values()); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	var bad []int64
	for _, d := range dl.all() {
		v, _ := d.Value.(int64)
		if d.Stage != "parse" || d.Reason != fmt.Sprintf("bad record %d", v) {
			t.Errorf("dead letter %+v; want stage parse and the function's error", d)
		}
		bad = append(bad, v)
	}
	if want := []int64{3, 13, 23, 33, 43, 53, 63, 73, 83, 93}; !slices.Equal(sorted(bad), want) {
		t.Errorf("dead letters for %v, want %v", sorted(bad), want)
	}
	st := statsOf(t, job, "src")
	if st.In != 100 || st.DeadLetters != 10 || st.Out != 90 || st.In != st.Out+st.DeadLetters {
		t.Errorf("stats %+v; want in 100 = out 90 + dead letters 10", st)
	}
}

func TestRunPanicInMap(t *testing.T) {
	g := graph.New("panic")
	m := graph.Map(graph.From(g, count(100), graph.Name("src")), func(v int64) int64 {
		if v == 42 {
			panic("the answer")
		}
		return v
	}, graph.Name("explode"))
	out := stream.NewCollectSink[int64]()
	m.Filter(func(int64) bool { return true }, graph.Name("after")).To(out)
	var dl letters
	job := run(t, g, graph.Parallelism(2), dl.option())

	if got := out.Len(); got != 99 {
		t.Errorf("%d records went through; want the 99 that did not panic", got)
	}
	if slices.Contains(out.Values(), 42) {
		t.Error("the record that panicked went through")
	}
	ds := dl.all()
	if len(ds) != 1 {
		t.Fatalf("dead letters %v; want one", ds)
	}
	if d := ds[0]; d.Stage != "explode" || !strings.Contains(d.Reason, "panic") || !strings.Contains(d.Reason, "the answer") || d.Value != int64(42) {
		t.Errorf("dead letter %+v; want stage explode, a panic reason and value 42", d)
	}
	if st := statsOf(t, job, "src"); st.In != 100 || st.DeadLetters != 1 || st.Out != 99 {
		t.Errorf("stats %+v; want in 100, out 99, one dead letter", st)
	}
}

func TestRunPanicInProcess(t *testing.T) {
	g := graph.New("panic")
	p := graph.Process(graph.KeyBy(graph.From(g, count(50), graph.Name("src")), func(v int64) int64 { return v % 5 }),
		stream.KeyedProcess[int64, int64, int64]{OnRecord: func(_ stream.Context[int64], v int64, out stream.Emitter[int64]) error {
			if v == 7 {
				panic(fmt.Sprintf("cannot take %d", v))
			}
			out.Emit(v)
			return nil
		}}, graph.Name("proc"))
	out := stream.NewCollectSink[int64]()
	p.To(out)
	var dl letters
	job := run(t, g, graph.Parallelism(2), graph.MaxKeyGroups(4), dl.option())

	if out.Len() != 49 || slices.Contains(out.Values(), 7) {
		t.Errorf("got %v; want every record but 7", sorted(out.Values()))
	}
	ds := dl.all()
	if len(ds) != 1 || ds[0].Stage != "proc" || !strings.Contains(ds[0].Reason, "panic: cannot take 7") {
		t.Errorf("dead letters %+v; want the panic of stage proc", ds)
	}
	if st := statsOf(t, job, "proc"); st.In != 50 || st.DeadLetters != 1 || st.Instances != 4 {
		t.Errorf("stats %+v; want 4 instances, in 50, one dead letter", st)
	}
}

func TestRunPartitionAndBroadcast(t *testing.T) {
	g := graph.New("fanout")
	src := graph.From(g, count(100), graph.Name("src"))
	parts := graph.Partition(src, 3, func(v int64) int { return int(v % 4) }, graph.Name("split"))
	outs := make([]*stream.CollectSink[int64], 3)
	for i, p := range parts {
		outs[i] = stream.NewCollectSink[int64]()
		p.To(outs[i])
	}
	copies := graph.Broadcast(src, 2, graph.Name("copy"))
	all := []*stream.CollectSink[int64]{stream.NewCollectSink[int64](), stream.NewCollectSink[int64]()}
	copies[0].To(all[0])
	copies[1].To(all[1])
	var dl letters
	run(t, g, graph.Parallelism(4), dl.option())

	for i, o := range outs {
		var want []int64
		for v := int64(i); v < 100; v += 4 {
			want = append(want, v)
		}
		if got := sorted(o.Values()); !slices.Equal(got, want) {
			t.Errorf("partition %d got %v, want %v", i, got, want)
		}
	}
	var bad []int64
	for _, d := range dl.all() {
		if d.Stage != "split" || d.Reason != "partition index 3 out of [0, 3)" {
			t.Errorf("dead letter %+v; want an out-of-range index from stage split", d)
		}
		bad = append(bad, d.Value.(int64))
	}
	var wantBad []int64
	for v := int64(3); v < 100; v += 4 {
		wantBad = append(wantBad, v)
	}
	if !slices.Equal(sorted(bad), wantBad) {
		t.Errorf("dead letters for %v, want %v", sorted(bad), wantBad)
	}
	for i, o := range all {
		if got := sorted(o.Values()); !slices.Equal(got, sortedCount(100)) {
			t.Errorf("broadcast copy %d got %d records; want all 100", i, len(got))
		}
	}
}

func sortedCount(n int64) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = int64(i)
	}
	return s
}

func TestRunMerge(t *testing.T) {
	g := graph.New("merge")
	a := graph.From(g, stream.Generate(500, func(i int64) int64 { return i }), graph.Name("a"))
	b := graph.From(g, stream.Generate(500, func(i int64) int64 { return 500 + i }), graph.Name("b"))
	out := stream.NewCollectSink[int64]()
	graph.Merge(a, b).To(out)
	job := run(t, g, graph.Parallelism(2))
	if got := sorted(out.Values()); !slices.Equal(got, sortedCount(1000)) {
		t.Errorf("got %d records; want 0..999 once each", len(got))
	}
	if sa, sb := statsOf(t, job, "a"), statsOf(t, job, "b"); sa.In != 500 || sb.In != 500 || sa.Out+sb.Out != 1000 {
		t.Errorf("stats %+v %+v; want 500 in each, 1000 out", sa, sb)
	}
}

func TestRunMergeJunctionIntoKeyBy(t *testing.T) {
	g := graph.New("junction")
	j := graph.NewMerge[int64](g, graph.Name("both"))
	j.Add(graph.From(g, count(300), graph.Name("a")))
	j.Add(graph.From(g, count(200), graph.Name("b")))
	out := stream.NewCollectSink[stream.KV[int64, int64]]()
	graph.Count(graph.KeyBy(j.Out(), func(v int64) int64 { return v % 2 })).To(out)
	run(t, g, graph.Parallelism(2), graph.MaxKeyGroups(4))
	if got := lastPerKey(t, out.Records()); got[0] != 250 || got[1] != 250 || len(got) != 2 {
		t.Errorf("counts %v; want 250 even and 250 odd", got)
	}
}

func TestRunCoMap(t *testing.T) {
	g := graph.New("comap")
	nums := graph.From(g, count(50), graph.Name("nums"))
	words := graph.From(g, stream.Slice([]string{"x", "y", "z"}), graph.Name("words"))
	out := stream.NewCollectSink[string]()
	graph.CoMap(graph.Connect(nums, words),
		func(v int64) string { return "n" + strconv.FormatInt(v, 10) },
		func(w string) string { return "w" + w }).To(out)
	run(t, g, graph.Parallelism(2))
	want := []string{"wx", "wy", "wz"}
	for i := range 50 {
		want = append(want, "n"+strconv.Itoa(i))
	}
	if got := sorted(out.Values()); !slices.Equal(got, sorted(want)) {
		t.Errorf("got %v, want %v", got, sorted(want))
	}
}

// TestRunKeyByCount checks exact per-key counts whatever the parallelism and batch size:
// every record is counted once, and since a key lives in one key group, its running counts
// arrive at the sink in order, so the last is the total.
func TestRunKeyByCount(t *testing.T) {
	const records, keys = 100_000, 1000
	for _, p := range []int{1, 2, 4} {
		for _, batch := range []int{1, 7, 512} {
			t.Run(fmt.Sprintf("parallelism=%d/batch=%d", p, batch), func(t *testing.T) {
				g := graph.New("count")
				src := graph.From(g, count(records), graph.Name("src"))
				counts := graph.Count(graph.KeyBy(src, func(v int64) int64 { return v % keys }), graph.Name("count"))
				out := stream.NewCollectSink[stream.KV[int64, int64]]()
				counts.To(out)
				job := run(t, g, graph.Parallelism(p), graph.BatchSize(batch))

				last := lastPerKey(t, out.Records())
				if len(last) != keys {
					t.Errorf("%d keys; want %d", len(last), keys)
				}
				for k, n := range last {
					if n != records/keys {
						t.Errorf("key %d counted %d times; want %d", k, n, records/keys)
					}
				}
				// With local aggregation, the source sends partial counts: fewer than the
				// records, at least one per key.
				sst := statsOf(t, job, "src")
				if sst.In != records || sst.Out > records || sst.Out < keys || sst.Instances != p {
					t.Errorf("source stats %+v; want %d instances, %d in, %d to %d out", sst, p, records, keys, records)
				}
				if st := statsOf(t, job, "count"); st.In != sst.Out || st.Instances != 128 || st.DeadLetters != 0 {
					t.Errorf("count stats %+v; want 128 instances, %d in", st, sst.Out)
				}
			})
		}
	}
}

func TestRunReduceAndSum(t *testing.T) {
	g := graph.New("reduce")
	src := graph.From(g, count(1000), graph.Name("src"))
	byDigit := func(v int64) int64 { return v % 10 }
	reduced := stream.NewCollectSink[stream.KV[int64, int64]]()
	graph.Reduce(graph.KeyBy(src, byDigit), func(acc, v int64) int64 { return acc + v }, graph.Name("reduce")).To(reduced)
	summed := stream.NewCollectSink[stream.KV[int64, int64]]()
	graph.Aggregate(graph.KeyBy(src, byDigit), agg.Sum[int64](), graph.Name("sum")).To(summed)
	run(t, g, graph.Parallelism(2), graph.BatchSize(16))

	want := map[int64]int64{}
	for i := int64(0); i < 1000; i++ {
		want[i%10] += i
	}
	for name, out := range map[string]*stream.CollectSink[stream.KV[int64, int64]]{"reduce": reduced, "sum": summed} {
		got := lastPerKey(t, out.Records())
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestRunEmitModes(t *testing.T) {
	const records, keys = 5000, 50
	tests := []struct {
		mode stream.EmitMode
		// check gets the results of one key, in arrival order.
		check func(t *testing.T, key int64, counts []int64)
		total int
	}{
		{stream.EmitEveryUpdate, func(t *testing.T, key int64, counts []int64) {
			for i, n := range counts {
				if n != int64(i+1) {
					t.Fatalf("key %d: update %d is %d; want every running count 1..%d in order", key, i, n, records/keys)
				}
			}
		}, records},
		{stream.EmitAtEnd, func(t *testing.T, key int64, counts []int64) {
			if len(counts) != 1 || counts[0] != records/keys {
				t.Errorf("key %d: results %v; want one, %d", key, counts, records/keys)
			}
		}, keys},
		{stream.EmitPerBatch, func(t *testing.T, key int64, counts []int64) {
			if counts[len(counts)-1] != records/keys {
				t.Errorf("key %d: last result %d; want %d", key, counts[len(counts)-1], records/keys)
			}
		}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			g := graph.New("emit")
			src := graph.From(g, count(records), graph.Name("src"))
			out := stream.NewCollectSink[stream.KV[int64, int64]]()
			graph.Count(graph.KeyBy(src, func(v int64) int64 { return v % keys }), graph.Emit(tt.mode)).To(out)
			run(t, g, graph.Parallelism(2), graph.BatchSize(64))

			recs := out.Records()
			if tt.total >= 0 && len(recs) != tt.total {
				t.Errorf("%d results; want %d", len(recs), tt.total)
			}
			perKey := map[int64][]int64{}
			for _, r := range recs {
				perKey[r.Value.Key] = append(perKey[r.Value.Key], r.Value.Value)
			}
			if len(perKey) != keys {
				t.Errorf("%d keys; want %d", len(perKey), keys)
			}
			for k, counts := range perKey {
				tt.check(t, k, counts)
			}
		})
	}
}

type event struct {
	User   string `json:"user"`
	Amount int    `json:"amount"`
}

type summary struct {
	User      string
	Total     int
	N         int
	Even, Odd int
	// ListSum adds up the list state: it must agree with the value state.
	ListSum int
}

// TestRunProcessState runs a keyed process function with value, map and list state and a
// side output, and checks each key's final summary against the same fold done here.
func TestRunProcessState(t *testing.T) {
	var events []event
	for i := range 1000 {
		events = append(events, event{User: fmt.Sprintf("u%d", i%7), Amount: i%9 - 1})
	}
	total := stream.NewValueState[int]("total")
	parity := stream.NewMapState[string, int]("parity")
	history := stream.NewListState[int]("history")
	invalid := stream.NewTag[event]("invalid")
	fn := stream.KeyedProcess[string, event, summary]{OnRecord: func(ctx stream.Context[string], e event, out stream.Emitter[summary]) error {
		if e.Amount < 0 {
			invalid.Emit(out, e)
			return nil
		}
		sum, _ := total.Get(ctx)
		total.Set(ctx, sum+e.Amount)
		p := "odd"
		if e.Amount%2 == 0 {
			p = "even"
		}
		n, _ := parity.Get(ctx, p)
		parity.Put(ctx, p, n+1)
		history.Append(ctx, e.Amount)
		items := history.Items(ctx)
		listSum := 0
		for _, a := range items {
			listSum += a
		}
		even, _ := parity.Get(ctx, "even")
		odd, _ := parity.Get(ctx, "odd")
		out.Emit(summary{User: ctx.Key(), Total: sum + e.Amount, N: len(items), Even: even, Odd: odd, ListSum: listSum})
		return nil
	}}

	g := graph.New("process")
	src := graph.From(g, stream.Slice(events), graph.Name("events"))
	keyed := graph.KeyBy(src, func(e event) string { return e.User }, graph.WithCodec(stream.JSON[event]()))
	sums := graph.Process(keyed, fn, graph.Name("tally"))
	out := stream.NewCollectSink[summary]()
	sums.To(out)
	bad := stream.NewCollectSink[event]()
	graph.SideOutput(sums, invalid).To(bad)
	job := run(t, g, graph.Parallelism(2), graph.MaxKeyGroups(16))

	want := map[string]*summary{}
	var wantBad []string
	valid := 0
	for _, e := range events {
		if e.Amount < 0 {
			wantBad = append(wantBad, fmt.Sprint(e))
			continue
		}
		valid++
		s := want[e.User]
		if s == nil {
			s = &summary{User: e.User}
			want[e.User] = s
		}
		s.Total += e.Amount
		s.N++
		if e.Amount%2 == 0 {
			s.Even++
		} else {
			s.Odd++
		}
		s.ListSum += e.Amount
	}
	if out.Len() != valid {
		t.Errorf("%d summaries; want one per valid event, %d", out.Len(), valid)
	}
	last := map[string]summary{}
	for _, s := range out.Values() {
		if prev, ok := last[s.User]; ok && s.N != prev.N+1 {
			t.Fatalf("user %s: summary %d after %d; per-key order is lost", s.User, s.N, prev.N)
		}
		last[s.User] = s
	}
	for u, w := range want {
		if last[u] != *w {
			t.Errorf("user %s: last summary %+v, want %+v", u, last[u], *w)
		}
	}
	var gotBad []string
	for _, e := range bad.Values() {
		gotBad = append(gotBad, fmt.Sprint(e))
	}
	if !slices.Equal(sorted(gotBad), sorted(wantBad)) {
		t.Errorf("side output %v, want %v", sorted(gotBad), sorted(wantBad))
	}
	if st := statsOf(t, job, "tally"); st.In != int64(len(events)) || st.Out != int64(len(events)) || st.DeadLetters != 0 {
		t.Errorf("stats %+v; want every event in, and out to the sink or the side output", st)
	}
}

func TestRunSideOutputWithoutConsumer(t *testing.T) {
	orphan := stream.NewTag[int64]("orphan")
	g := graph.New("side")
	src := graph.From(g, count(100), graph.Name("src"))
	p := graph.Process(graph.KeyBy(src, func(v int64) int64 { return v % 3 }), stream.KeyedProcess[int64, int64, int64]{
		OnRecord: func(_ stream.Context[int64], v int64, out stream.Emitter[int64]) error {
			if v%10 == 0 {
				orphan.Emit(out, v)
				return nil
			}
			out.Emit(v)
			return nil
		}}, graph.Name("proc"))
	out := stream.NewCollectSink[int64]()
	p.To(out)
	var dl letters
	job := run(t, g, graph.Parallelism(2), graph.MaxKeyGroups(8), dl.option())

	if out.Len() != 90 {
		t.Errorf("%d records in the main output; want 90", out.Len())
	}
	var lost []int64
	for _, d := range dl.all() {
		if d.Stage != "proc" || !strings.Contains(d.Reason, `side output "orphan" has no consumer`) {
			t.Errorf("dead letter %+v; want stage proc and a side output with no consumer", d)
		}
		lost = append(lost, d.Value.(int64))
	}
	if want := []int64{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}; !slices.Equal(sorted(lost), want) {
		t.Errorf("dead letters for %v, want %v", sorted(lost), want)
	}
	if st := statsOf(t, job, "proc"); st.DeadLetters != 10 {
		t.Errorf("stats %+v; want 10 dead letters", st)
	}
}

func TestRunFailJob(t *testing.T) {
	g := graph.New("fail")
	parsed := graph.TryMap(graph.From(g, count(1000), graph.Name("src")), func(v int64) (int64, error) {
		if v == 500 {
			return 0, errors.New("bad record 500")
		}
		return v, nil
	}, graph.Name("parse"))
	parsed.To(stream.NewCollectSink[int64]())
	var dl letters
	job := build(t, g, graph.Parallelism(1), graph.OnError(actor.FailJob), dl.option())
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	err := job.Run(ctx)
	if err == nil {
		t.Fatal("Run succeeded; want the job to fail on the bad record")
	}
	for _, w := range []string{"stage parse", "bad record 500"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is a context error; want the stage's", err)
	}
	if ds := dl.all(); len(ds) != 1 || ds[0].Value != int64(500) {
		t.Errorf("dead letters %+v; want the bad record", ds)
	}
}

// TestRunCancelUnbounded cancels a job whose source never ends: Run must return the
// context's error promptly and leave no goroutine behind.
func TestRunCancelUnbounded(t *testing.T) {
	for _, how := range []string{"cancel", "timeout"} {
		t.Run(how, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			feed := make(chan int64) // never closed
			g := graph.New("unbounded")
			out := stream.NewCollectSink[stream.KV[int64, int64]]()
			src := graph.From(g, stream.Channel(feed), graph.Name("feed"))
			graph.Count(graph.KeyBy(src, func(v int64) int64 { return v % 4 })).To(out)
			job := build(t, g, graph.MaxKeyGroups(8))

			var ctx context.Context
			var cancel context.CancelFunc
			wantErr := context.Canceled
			if how == "cancel" {
				ctx, cancel = context.WithCancel(context.Background())
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
				wantErr = context.DeadlineExceeded
			}
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- job.Run(ctx) }()

			for i := range int64(100) {
				select {
				case feed <- i:
				case err := <-done:
					t.Fatalf("Run returned %v while the source was open", err)
				}
			}
			// The records are in: the running counts reach the sink after a linger.
			deadline := time.Now().Add(5 * time.Second)
			for len(lastPerKey(t, out.Records())) < 4 || lastPerKey(t, out.Records())[3] != 25 {
				if time.Now().After(deadline) {
					t.Fatalf("the counts of the records fed never reached the sink: %v", lastPerKey(t, out.Records()))
				}
				time.Sleep(5 * time.Millisecond)
			}
			if how == "cancel" {
				cancel()
			}
			select {
			case err := <-done:
				if !errors.Is(err, wantErr) {
					t.Errorf("Run returned %v; want %v", err, wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after the context ended")
			}
			if !out.Closed() {
				t.Error("the sink was not closed when the job stopped")
			}
		})
	}
}

func TestRunOnce(t *testing.T) {
	g := graph.New("once")
	out := stream.NewCollectSink[int64]()
	graph.From(g, count(10)).To(out)
	job := run(t, g)
	err := job.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "has run already") {
		t.Errorf("second Run returned %v; want an error saying the job has run", err)
	}
	if out.Len() != 10 {
		t.Errorf("%d records; want the 10 of the first run only", out.Len())
	}
}

func TestRunGraphRun(t *testing.T) {
	g := graph.New("graph-run")
	out := stream.NewCollectSink[int64]()
	graph.From(g, count(10)).To(out)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := g.Run(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if got := sorted(out.Values()); !slices.Equal(got, sortedCount(10)) {
		t.Errorf("got %v", got)
	}
	if err := graph.New("broken").Run(ctx, quiet); err == nil || !strings.Contains(err.Error(), "no stages") {
		t.Errorf("Run of an empty graph returned %v; want the build error", err)
	}
}

// TestRunJSONCodecKeyBy runs a struct stream across KeyBy with a JSON codec.
func TestRunJSONCodecKeyBy(t *testing.T) {
	var cs []click
	for i := range 3000 {
		cs = append(cs, click{User: fmt.Sprintf("user-%d", i%30), N: i})
	}
	g := graph.New("json")
	src := graph.From(g, stream.Slice(cs), graph.Name("clicks")).WithCodec(stream.JSON[click]())
	perUser := graph.Aggregate(graph.KeyBy(src, byUser), clickSum{}, graph.Name("per-user"))
	out := stream.NewCollectSink[stream.KV[string, int]]()
	perUser.To(out)
	run(t, g, graph.Parallelism(3), graph.MaxKeyGroups(32))

	want := map[string]int{}
	for _, c := range cs {
		want[c.User] += c.N
	}
	got := lastPerKey(t, out.Records())
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// clickSum adds up the N of clicks: an aggregator whose input is a struct.
type clickSum struct{}

func (clickSum) Zero() int                { return 0 }
func (clickSum) Add(acc int, c click) int { return acc + c.N }
func (clickSum) Result(acc int) int       { return acc }

// perKeyTimer counts records per key and emits the count when the key's timer fires, d
// after the key's first record.
func perKeyTimer(d time.Duration) stream.KeyedProcess[int64, int64, stream.KV[int64, int64]] {
	seen := stream.NewValueState[int64]("seen")
	return stream.KeyedProcess[int64, int64, stream.KV[int64, int64]]{
		OnRecord: func(ctx stream.Context[int64], _ int64, _ stream.Emitter[stream.KV[int64, int64]]) error {
			n, ok := seen.Get(ctx)
			if !ok {
				ctx.RegisterTimer(ctx.Now().Add(d))
			}
			seen.Set(ctx, n+1)
			return nil
		},
		OnTimer: func(ctx stream.Context[int64], _ time.Time, out stream.Emitter[stream.KV[int64, int64]]) error {
			n, _ := seen.Get(ctx)
			out.Emit(stream.KV[int64, int64]{Key: ctx.Key(), Value: n})
			return nil
		},
	}
}

// TestRunTimersAtEnd checks that a bounded job fires the timers still pending when its input
// ends, so that no result waiting on a timer is lost.
func TestRunTimersAtEnd(t *testing.T) {
	g := graph.New("timers")
	src := graph.From(g, count(1000), graph.Name("src"))
	out := stream.NewCollectSink[stream.KV[int64, int64]]()
	graph.Process(graph.KeyBy(src, func(v int64) int64 { return v % 10 }), perKeyTimer(time.Hour), graph.Name("proc")).To(out)
	run(t, g, graph.Parallelism(2), graph.MaxKeyGroups(8))
	got := lastPerKey(t, out.Records())
	if out.Len() != 10 || len(got) != 10 {
		t.Fatalf("results %v; want one per key", out.Values())
	}
	for k, n := range got {
		if n != 100 {
			t.Errorf("key %d: %d; want 100", k, n)
		}
	}
}

// TestRunTimerOutputReachesSink checks that what a timer emits in a running (unbounded) job
// reaches a sink fused after the keyed stage without waiting for more input.
func TestRunTimerOutputReachesSink(t *testing.T) {
	defer goleak.VerifyNone(t)
	feed := make(chan int64)
	g := graph.New("timers")
	src := graph.From(g, stream.Channel(feed), graph.Name("feed"))
	out := stream.NewCollectSink[stream.KV[int64, int64]]()
	graph.Process(graph.KeyBy(src, func(v int64) int64 { return v % 3 }), perKeyTimer(20*time.Millisecond), graph.Name("proc")).To(out)
	job := build(t, g, graph.MaxKeyGroups(8))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	for i := range int64(30) {
		feed <- i
	}
	deadline := time.Now().Add(3 * time.Second)
	for out.Len() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v; want context.Canceled", err)
	}
	if got := lastPerKey(t, out.Records()); len(got) != 3 || got[0] != 10 || got[1] != 10 || got[2] != 10 {
		t.Errorf("timer results %v reached the sink while the job ran; want 10 for each of 3 keys", got)
	}
}

// TestRunKeyedAfterKeyed runs a keyed stage on the output of another: a second exchange.
func TestRunKeyedAfterKeyed(t *testing.T) {
	g := graph.New("histogram")
	words := graph.From(g, stream.Generate(6000, func(i int64) string { return fmt.Sprintf("w%d", i%(1+i%60)) }), graph.Name("words"))
	perWord := graph.Count(graph.KeyBy(words, func(w string) string { return w }), graph.Name("per-word"), graph.Emit(stream.EmitAtEnd))
	byCount := graph.Count(graph.KeyBy(perWord, func(kv stream.KV[string, int64]) int64 { return kv.Value }, graph.WithCodec(stream.JSON[stream.KV[string, int64]]())), graph.Name("per-count"))
	out := stream.NewCollectSink[stream.KV[int64, int64]]()
	byCount.To(out)
	run(t, g, graph.Parallelism(3), graph.MaxKeyGroups(16), graph.BatchSize(32))

	words2 := map[string]int64{}
	for i := int64(0); i < 6000; i++ {
		words2[fmt.Sprintf("w%d", i%(1+i%60))]++
	}
	want := map[int64]int64{}
	for _, n := range words2 {
		want[n]++
	}
	if got := lastPerKey(t, out.Records()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRunDiamond fans a stream out and back in, into a sink and into a KeyBy: the stages
// after the merge are built once per instance and see every record of both branches.
func TestRunDiamond(t *testing.T) {
	g := graph.New("diamond")
	src := graph.From(g, count(100), graph.Name("src"))
	b := graph.Broadcast(src, 2, graph.Name("copy"))
	left := graph.Map(b[0], func(v int64) int64 { return v })
	right := graph.Map(b[1], func(v int64) int64 { return v + 1000 })
	both := graph.Merge(left, right)
	out := stream.NewCollectSink[int64]()
	both.To(out)
	counts := stream.NewCollectSink[stream.KV[int64, int64]]()
	graph.Count(graph.KeyBy(both, func(v int64) int64 { return v / 1000 })).To(counts)
	run(t, g, graph.Parallelism(2))
	var want []int64
	for i := int64(0); i < 100; i++ {
		want = append(want, i, i+1000)
	}
	if got := sorted(out.Values()); !slices.Equal(got, sorted(want)) {
		t.Errorf("got %v, want %v", got, sorted(want))
	}
	if got := lastPerKey(t, counts.Records()); got[0] != 100 || got[1] != 100 || len(got) != 2 {
		t.Errorf("counts %v; want 100 per branch", got)
	}
}

// TestRunSinkError checks that the records of a batch a sink refuses are dead letters of the
// sink stage, and not counted as written.
func TestRunSinkError(t *testing.T) {
	g := graph.New("sink-error")
	var written atomic.Int64
	sink := stream.FuncSink(func(recs []stream.Record[int64]) error {
		for _, r := range recs {
			if r.Value == 13 {
				return errors.New("unlucky batch")
			}
		}
		written.Add(int64(len(recs)))
		return nil
	})
	graph.From(g, count(100), graph.Name("src")).To(sink, graph.Name("out"))
	var dl letters
	job := run(t, g, graph.Parallelism(1), graph.BatchSize(10), dl.option())
	ds := dl.all()
	if len(ds) != 10 {
		t.Fatalf("%d dead letters; want the 10 records of the refused batch", len(ds))
	}
	for _, d := range ds {
		if d.Stage != "out" || !strings.Contains(d.Reason, "unlucky batch") {
			t.Errorf("dead letter %+v; want stage out and the sink's error", d)
		}
	}
	if st := statsOf(t, job, "src"); st.Out != 90 || st.DeadLetters != 10 || written.Load() != 90 {
		t.Errorf("stats %+v, written %d; want 90 out, 10 dead letters", st, written.Load())
	}
}

// TestRunCancelUnderLoad cancels a job while records flow through an exchange with little
// credit: Run returns promptly and nothing is left running.
func TestRunCancelUnderLoad(t *testing.T) {
	defer goleak.VerifyNone(t)
	feed := make(chan int64)
	g := graph.New("load")
	src := graph.From(g, stream.Channel(feed), graph.Name("feed"))
	ctx, cancel := context.WithCancel(context.Background())
	// The sink takes 1,000 records, then stalls until the job is cancelled: every channel
	// behind it fills up to its credits and the feeder blocks. That is the load.
	const taken = 1000
	var got atomic.Int64
	stalled := make(chan struct{})
	sink := stream.FuncSink(func(recs []stream.Record[stream.KV[int64, int64]]) error {
		if got.Add(int64(len(recs))) >= taken {
			select {
			case <-stalled:
			default:
				close(stalled)
			}
			<-ctx.Done()
		}
		return nil
	})
	graph.Count(graph.KeyBy(src, func(v int64) int64 { return v % 64 }), graph.Emit(stream.EmitEveryUpdate), graph.Name("count")).To(sink)
	job := build(t, g, graph.BatchSize(4), graph.Credits(1), graph.MaxKeyGroups(16), graph.Linger(time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	var fed atomic.Int64
	feeding := make(chan struct{})
	go func() {
		defer close(feeding)
		for i := int64(0); ; i++ {
			select {
			case feed <- i:
				fed.Add(1)
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-stalled:
	case <-time.After(runTimeout):
		t.Fatalf("the sink got %d records in %v; want %d", got.Load(), runTimeout, taken)
	}
	// Once the sink stalls, the feeder must block within the credits' reach: it stops
	// making progress (for a long while: 200ms, tens of thousands of records at the pace
	// it had) while the job is still running.
	blocked := false
	for deadline := time.Now().Add(runTimeout); !blocked && time.Now().Before(deadline); {
		before := fed.Load()
		time.Sleep(200 * time.Millisecond)
		blocked = fed.Load() == before
	}
	if !blocked {
		t.Fatalf("the feeder kept going (%d fed) while the sink stalled: no backpressure", fed.Load())
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	<-feeding
	if in := statsOf(t, job, "count").In; in < taken {
		t.Errorf("the count stage took in %d records; want at least %d", in, taken)
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	g := graph.New("early")
	out := stream.NewCollectSink[int64]()
	graph.From(g, count(10)).To(out)
	job := build(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := job.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v; want context.Canceled", err)
	}
	if !out.Closed() {
		t.Error("the sink was not closed")
	}
}

// TestRunTwoJobsFromOneGraph builds one graph twice, with different parallelism, and runs
// both jobs: each reads the splits its own Build made.
func TestRunTwoJobsFromOneGraph(t *testing.T) {
	g := graph.New("twice")
	var n atomic.Int64
	graph.From(g, count(1000), graph.Name("src")).To(stream.FuncSink(func(recs []stream.Record[int64]) error {
		n.Add(int64(len(recs)))
		return nil
	}))
	first := build(t, g, graph.Parallelism(4))
	second := build(t, g, graph.Parallelism(1))
	for i, job := range []*graph.Job{first, second} {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		err := job.Run(ctx)
		cancel()
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if got, want := n.Load(), int64(1000*(i+1)); got != want {
			t.Errorf("after job %d: %d records written; want %d", i, got, want)
		}
		if st := statsOf(t, job, "src"); st.In != 1000 {
			t.Errorf("job %d read %d records; want 1000", i, st.In)
		}
	}
}
