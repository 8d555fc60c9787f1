package actortest_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// A gated source hands out exactly its share before the gate, nothing more while the gate is
// closed, and everything once it opens; its splits still rewind.
func TestGatedSource(t *testing.T) {
	const n, after, splits = 10_000, 1_000, 2
	gate := &actortest.Gate{}
	src := actortest.GatedSource(stream.Generate(n, func(i int64) int64 { return i }), after, gate)
	ss, err := src.Splits(splits)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range ss {
		if _, ok := sp.(interface{ Seek([]byte) error }); !ok {
			t.Errorf("a gated split of Generate does not rewind")
		}
	}

	g := graph.New("gated")
	out := stream.NewCollectSink[int64]()
	graph.From(g, src, graph.Name("src")).To(out)
	job, err := g.Build(graph.Parallelism(splits), graph.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	for out.Len() < after*splits && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	// Reading on would take a few milliseconds; give the closed gate ten times that to leak.
	time.Sleep(50 * time.Millisecond)
	if got := out.Len(); got != after*splits {
		t.Fatalf("%d records through a closed gate; want %d", got, after*splits)
	}
	if gate.IsOpen() {
		t.Fatal("the gate says it is open")
	}
	gate.Open()
	gate.Open() // twice is fine
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.Len(); got != n {
		t.Errorf("%d records after the gate opened; want %d", got, n)
	}
}
