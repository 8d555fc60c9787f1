package graph_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// A running job answers queries about its keyed state, as Kafka Streams' interactive
// queries do: the state of one key, or the keys of a range in key order, each answer with
// the checkpoint and the watermark it reflects. The admin endpoint serves the same as
// GET /state/{stage}?key=K and ?prefix=P&from=A&to=B&limit=N.
func ExampleJob_Query() {
	purchases := make(chan string, 4)
	for _, user := range []string{"alice", "bob", "alice", "carol"} {
		purchases <- user
	}
	// The channel stays open, so the job runs (and answers) until its context ends.
	g := graph.New("shop")
	users := graph.From(g, stream.Channel(purchases), graph.Name("purchases"))
	counts := stream.NewCollectSink[stream.KV[string, int64]]()
	graph.Count(graph.KeyBy(users, func(u string) string { return u }), graph.Name("per-user")).To(counts)
	job, err := g.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for total := int64(0); total < 4; time.Sleep(time.Millisecond) { // all four counted
		last := map[string]int64{}
		for _, kv := range counts.Values() {
			last[kv.Key] = kv.Value
		}
		total = last["alice"] + last["bob"] + last["carol"]
	}

	r, err := job.Query(ctx, "per-user", "alice")
	if err != nil {
		fmt.Println(err)
		return
	}
	var n int64
	if err := r.Decode(&n); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("alice:", n, "purchases; as of checkpoint", r.Checkpoint)

	s, err := job.Scan(ctx, "per-user", graph.Scan{From: "b", Limit: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range s.Entries {
		fmt.Printf("%s: %s\n", e.Key, e.Value)
	}
	// Output:
	// alice: 2 purchases; as of checkpoint 0
	// "bob": 1
	// "carol": 1
}
