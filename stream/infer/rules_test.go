package infer_test

import (
	"slices"
	"testing"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
)

func TestRoute(t *testing.T) {
	g := graph.New("rules")
	// Scores 0.00, 0.01, ..., 0.99.
	scored := infer.Stage(graph.From(g, points(100)), infer.RowFunc(func(r []float32) []float32 { return []float32{r[0] / 100} }), features)
	matched, rest := infer.Route(scored,
		infer.Threshold[point]("alerts", 0, 0.8),
		infer.Threshold[point]("review", 0, 0.5),
		infer.Rule[infer.Scored[point]]{Name: "odd", When: func(s infer.Scored[point]) bool { return s.In.ID%2 == 1 }})
	outs := []*stream.CollectSink[infer.Scored[point]]{stream.NewCollectSink[infer.Scored[point]](), stream.NewCollectSink[infer.Scored[point]](), stream.NewCollectSink[infer.Scored[point]](), stream.NewCollectSink[infer.Scored[point]]()}
	for i, m := range matched {
		m.To(outs[i])
	}
	rest.To(outs[3])
	run(t, g, graph.Parallelism(1))
	ids := func(c *stream.CollectSink[infer.Scored[point]]) []int64 {
		var out []int64
		for _, s := range c.Values() {
			out = append(out, s.In.ID)
		}
		slices.Sort(out)
		return out
	}
	var alerts, review, odd, none []int64
	for i := int64(0); i < 100; i++ {
		switch {
		case float32(i)/100 > 0.8:
			alerts = append(alerts, i)
		case float32(i)/100 > 0.5:
			review = append(review, i)
		case i%2 == 1:
			odd = append(odd, i)
		default:
			none = append(none, i)
		}
	}
	for i, want := range [][]int64{alerts, review, odd, none} {
		if got := ids(outs[i]); !slices.Equal(got, want) {
			t.Errorf("output %d: %v, want %v", i, got, want)
		}
	}
}
