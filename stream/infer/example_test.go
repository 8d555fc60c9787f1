package infer_test

import (
	"context"
	"fmt"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
)

func ExampleStage() {
	type txn struct {
		ID     string
		Amount float32
	}
	// A model written in Go: one score per row.
	model := infer.RowFunc(func(row []float32) []float32 { return []float32{row[0] / 100} })

	g := graph.New("score")
	txns := graph.From(g, stream.Slice([]txn{{"a", 20}, {"b", 150}, {"c", 90}}))
	scored := infer.Stage(txns, model, func(t txn) []float32 { return []float32{t.Amount} }, infer.MaxBatch(2))
	alerts := scored.Filter(func(s infer.Scored[txn]) bool { return s.Output[0] > 0.8 })
	out := stream.NewCollectSink[infer.Scored[txn]]()
	alerts.To(out)
	if err := g.Run(context.Background(), quiet, graph.Parallelism(1)); err != nil {
		fmt.Println(err)
	}
	for _, s := range out.Values() {
		fmt.Printf("%s %.2f\n", s.In.ID, s.Output[0])
	}
	// Output:
	// b 1.50
	// c 0.90
}

func ExampleVersions() {
	vs := infer.NewVersions()
	_ = vs.Set("stable", infer.RowFunc(func(r []float32) []float32 { return []float32{r[0]} }), 95)
	_ = vs.Set("canary", infer.RowFunc(func(r []float32) []float32 { return []float32{2 * r[0]} }), 5)
	// Later, while the job runs: a new model for the canary, swapped in whole.
	_ = vs.Set("canary", infer.RowFunc(func(r []float32) []float32 { return []float32{3 * r[0]} }), 5)
	fmt.Println(vs.Live())
	// Output: map[canary:5 stable:95]
}
