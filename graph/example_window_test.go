package graph_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// Click counts per user in tumbling one-minute windows of event time, with records allowed
// up to 30 s late; later ones go to the late side output.
func ExampleWindow() {
	type click struct {
		User string
		At   int64 // Unix ms
	}
	g := graph.New("clicks")
	events := graph.From(g, stream.Slice([]click{
		{"ann", 1_000}, {"bob", 20_000}, {"ann", 59_999}, {"ann", 60_000}, {"bob", 125_000},
		{"bob", 50_000}, // 75 s behind: later than the lateness
	}))
	stamped := graph.Timestamps(events, func(c click) int64 { return c.At }, stream.BoundedOutOfOrderPunctuated[click](0))
	perUser := graph.KeyBy(stamped, func(c click) string { return c.User }, graph.WithCodec(stream.JSON[click]()))
	counts := graph.Window(perUser, stream.Tumbling(time.Minute), agg.Count[click](), graph.Lateness(30*time.Second))
	results := stream.NewCollectSink[stream.WindowResult[string, int64]]()
	counts.To(results)
	late := stream.NewCollectSink[click]()
	graph.SideOutput(counts, stream.LateTag[click]()).To(late)

	if err := g.Run(context.Background(), graph.Parallelism(1), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
		fmt.Println(err)
		return
	}
	var lines []string
	for _, r := range results.Values() {
		lines = append(lines, fmt.Sprintf("%s [%ds, %ds): %d", r.Key, r.Start/1000, r.End/1000, r.Value))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Println("late:", late.Values())
	// Output:
	// ann [0s, 60s): 2
	// ann [60s, 120s): 1
	// bob [0s, 60s): 1
	// bob [120s, 180s): 1
	// late: [{bob 50000}]
}
