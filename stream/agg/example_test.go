package agg_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// An aggregator is plain logic: fold values into an accumulator, take one back, read the
// result.
func ExampleAvg() {
	avg := agg.Avg[float64]()
	acc := avg.Zero()
	for _, v := range []float64{2, 4, 9} {
		acc = avg.Add(acc, v)
	}
	fmt.Println(avg.Result(acc))
	acc = avg.(stream.Retracter[float64, agg.Mean]).Retract(acc, 9) // a retraction undoes the 9
	fmt.Println(avg.Result(acc))
	// Output:
	// 5
	// 3
}

// Counting clicks per user per minute of event time, as the package's doc shows.
func Example() {
	type click struct {
		User string
		At   int64 // Unix ms
	}
	g := graph.New("clicks")
	clicks := graph.Timestamps(graph.From(g, stream.Slice([]click{
		{"ann", 1_000}, {"ann", 30_000}, {"ann", 61_000},
	})), func(c click) int64 { return c.At }, stream.Monotonous[click]())
	perUser := graph.KeyBy(clicks, func(c click) string { return c.User }, graph.WithCodec(stream.JSON[click]()))
	counts := graph.Window(perUser, stream.Tumbling(time.Minute), agg.Count[click]())
	counts.To(stream.StdoutSink[stream.WindowResult[string, int64]]())
	if err := g.Run(context.Background(), graph.Parallelism(1)); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"key":"ann","start":0,"end":60000,"value":2}
	// {"key":"ann","start":60000,"end":120000,"value":1}
}
