package graph_test

import (
	"context"
	"fmt"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// A job with an admin endpoint on a free loopback port: eddytop, curl or Prometheus read it
// while the job runs; Job.AdminAddr says where. MaxDeadLetters fails the job past a limit.
func ExampleAdmin() {
	g := graph.New("watched")
	nums := graph.From(g, stream.Slice([]int64{1, 2, 3, 4}), graph.Name("nums"))
	graph.Count(graph.KeyBy(nums, func(n int64) bool { return n%2 == 0 }), graph.Name("parity")).
		To(stream.NewCollectSink[stream.KV[bool, int64]]())
	job, err := g.Build(graph.Admin("127.0.0.1:0"), graph.MaxDeadLetters(10), graph.Parallelism(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := job.Run(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	// The count folds the 4 numbers upstream (local aggregation): 2 partial counts cross.
	for _, st := range job.Stats() {
		fmt.Println(st.Stage, "in", st.In, "instances", len(st.PerInstance))
	}
	// Output:
	// nums in 4 instances 1
	// parity in 2 instances 128
}
