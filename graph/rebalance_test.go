package graph_test

import (
	"strings"
	"testing"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// A source that cannot be split, rebalanced over 3 instances: every record arrives once,
// the work after the boundary runs in every instance, and the plan shows the boundary.
func TestRebalance(t *testing.T) {
	const n = 50_000
	ch := make(chan int64, n)
	for i := range int64(n) {
		ch <- i
	}
	close(ch)
	g := graph.New("rebalance")
	src := graph.From(g, stream.Channel(ch), graph.Name("src"))
	spread := graph.Rebalance(src, graph.Name("spread"))
	out := stream.NewCollectSink[int64]()
	graph.Map(spread, func(v int64) int64 { return v * 2 }, graph.Name("double")).To(out)
	job := run(t, g, graph.Parallelism(3), graph.BatchSize(100))

	got := sorted(out.Values())
	if len(got) != n {
		t.Fatalf("got %d records, want %d", len(got), n)
	}
	for i, v := range got {
		if v != int64(2*i) {
			t.Fatalf("record %d is %d, want %d", i, v, 2*i)
		}
	}
	d := job.Describe()
	var found bool
	for _, v := range d.Vertices {
		if v.Name == "spread" {
			found = true
			if v.Kind != "stateless" || v.Instances != 3 || strings.Join(v.Stages, ",") != "spread,double,sink-3" {
				t.Errorf("vertex %+v: want a stateless vertex of 3 instances running spread, double and the sink", v)
			}
		}
	}
	if !found {
		t.Errorf("no vertex for the rebalance in %+v", d.Vertices)
	}
	if len(d.Channels) != 1 || d.Channels[0].Partitioning != "rebalance" {
		t.Errorf("channels %+v, want one rebalance channel", d.Channels)
	}
	if !strings.Contains(d.Mermaid(), `== "rebalance" ==>`) {
		t.Errorf("the Mermaid diagram does not draw the rebalance:\n%s", d.Mermaid())
	}
	st := statsOf(t, job, "spread")
	if st.In != n || st.Out != n {
		t.Errorf("spread stats %+v: want %d in and out", st, n)
	}
	if st.Batches != 0 {
		t.Errorf("spread sent %d batches; it feeds only a fused sink", st.Batches)
	}
	if src := statsOf(t, job, "src"); src.Batches < n/100 {
		t.Errorf("the source sent %d batches of at most 100 for %d records", src.Batches, n)
	}
}

func TestRebalanceNeedsCodec(t *testing.T) {
	type click struct{ User string }
	g := graph.New("rebalance")
	src := graph.From(g, stream.Slice([]click{{"a"}}))
	graph.Rebalance(src, graph.Name("spread")).To(stream.NewCollectSink[click]())
	_, err := g.Build()
	if err == nil || !strings.Contains(err.Error(), `"spread"`) || !strings.Contains(err.Error(), "Rebalance") || !strings.Contains(err.Error(), "Codec") {
		t.Fatalf("Build() = %v, want an error about the missing codec at spread", err)
	}
	g2 := graph.New("rebalance")
	src2 := graph.From(g2, stream.Slice([]click{{"a"}}))
	graph.Rebalance(src2, graph.WithCodec(stream.JSON[click]())).To(stream.NewCollectSink[click]())
	if _, err := g2.Build(); err != nil {
		t.Fatalf("with a codec: %v", err)
	}
}
