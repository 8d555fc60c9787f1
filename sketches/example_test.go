package sketches_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/sketches"
	"github.com/eddyflow/eddy/stream"
)

func ExampleCountMin() {
	cm, _ := sketches.NewCountMin(sketches.CountMinConfig{Epsilon: 0.001, Delta: 0.01, Conservative: true})
	for _, w := range strings.Fields("a rose is a rose is a rose") {
		cm.Add(w)
	}
	fmt.Println(cm.Estimate("rose"), cm.Estimate("a"), cm.Estimate("tulip"), cm.N())
	// Output: 3 3 0 8
}

func ExampleHyperLogLog() {
	h, _ := sketches.NewHyperLogLog(sketches.HyperLogLogConfig{}) // precision 14
	for i := range 10_000 {
		h.Add(fmt.Sprint("user-", i%2500))
	}
	fmt.Println(h.Estimate())
	// Output: 2500
}

func ExampleBloom() {
	b, _ := sketches.NewBloom(sketches.BloomConfig{Capacity: 1000, FalsePositive: 0.01})
	b.Add("alice")
	fmt.Println(b.Test("alice"), b.Test("bob"))
	// Output: true false
}

func ExampleRotatingBloom() {
	// "Seen in the last minute?", with times in Unix ms passed in.
	r, _ := sketches.NewRotatingBloom(sketches.RotatingBloomConfig{Window: time.Minute, Capacity: 10_000})
	r.Add("order-1", 0)
	fmt.Println(r.Test("order-1", 59_999))  // within the minute
	fmt.Println(r.Test("order-1", 100_000)) // after D·G/(G−1) = 90 s (G = 3)
	// Output:
	// true
	// false
}

func ExampleTopK() {
	t, _ := sketches.NewTopK(sketches.TopKConfig{Capacity: 100})
	for _, w := range strings.Fields("b a c a b a d a b") {
		t.Add(w)
	}
	for _, it := range t.Top(2) {
		fmt.Println(it.Item, it.Count)
	}
	// Output:
	// a 4
	// b 3
}

func ExampleQuantiles() {
	q, _ := sketches.NewQuantiles(sketches.QuantilesConfig{})
	for i := 1; i <= 100_000; i++ {
		q.Add(float64(i))
	}
	p := q.Quantiles(0.5, 0.99)
	// Within 1% of rank: p50 in [49,000, 51,000], p99 in [98,000, 100,000].
	fmt.Println(p[0] >= 49_000 && p[0] <= 51_000, p[1] >= 98_000 && p[1] <= 100_000)
	// Output: true true
}

// Distinct users per page in one-minute tumbling windows of event time.
func ExampleApproxDistinct() {
	type visit struct {
		Page, User string
		At         int64 // Unix ms
	}
	var visits []visit
	for i := range 600 {
		visits = append(visits, visit{Page: "home", User: fmt.Sprint("u", i%150), At: int64(i) * 100})
	}
	g := graph.New("visitors")
	src := graph.From(g, stream.Slice(visits))
	stamped := graph.Timestamps(src, func(v visit) int64 { return v.At }, stream.BoundedOutOfOrderPunctuated[visit](0))
	perPage := graph.KeyBy(stamped, func(v visit) string { return v.Page }, graph.WithCodec(stream.JSON[visit]()))
	distinct, err := sketches.ApproxDistinct(func(v visit) string { return v.User }, sketches.HyperLogLogConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	out := stream.NewCollectSink[stream.WindowResult[string, uint64]]()
	graph.Window(perPage, stream.Tumbling(time.Minute), distinct).To(out)
	if err := g.Run(context.Background(), graph.Parallelism(2), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range out.Values() {
		fmt.Printf("%s [%ds, %ds): %d users\n", r.Key, r.Start/1000, r.End/1000, r.Value)
	}
	// Output: home [0s, 60s): 150 users
}

// Drop repeated orders within a minute of event time.
func ExampleDedup() {
	type order struct {
		ID string
		At int64 // Unix ms
	}
	g := graph.New("orders")
	src := graph.From(g, stream.Slice([]order{{"a", 0}, {"b", 1_000}, {"a", 30_000}, {"a", 200_000}}))
	stamped := graph.Timestamps(src, func(o order) int64 { return o.At }, stream.BoundedOutOfOrderPunctuated[order](0))
	unique, err := sketches.Dedup(stamped, func(o order) string { return o.ID },
		sketches.DedupConfig{Within: time.Minute, EventTime: true},
		graph.WithCodec(stream.JSON[order]()), graph.Name("dedup"))
	if err != nil {
		fmt.Println(err)
		return
	}
	out := stream.NewCollectSink[order]()
	unique.To(out)
	if err := g.Run(context.Background(), graph.Parallelism(1), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
		fmt.Println(err)
		return
	}
	kept := out.Values()
	slices.SortFunc(kept, func(a, b order) int { return int(a.At - b.At) })
	fmt.Println(kept)
	// Output: [{a 0} {b 1000} {a 200000}]
}
