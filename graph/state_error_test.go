package graph_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// Keyed state restored from a savepoint that does not decode with the type of the handle
// that reads it (here: a string read as an int64) fails the job with a *stream.StateError,
// under the default Skip policy too: it is no dead letter, and the state is not silently
// reset.
func TestStateThatDoesNotDecodeFailsTheJob(t *testing.T) {
	const n = 1000
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gate := &actortest.Gate{}
	job := func(src stream.Source[int64], fn stream.KeyedProcess[int64, int64, int64], opts ...graph.JobOption) *graph.Job {
		g := graph.New("typed-state")
		in := graph.From(g, src, graph.Name("src"))
		graph.Process(graph.KeyBy(in, func(v int64) int64 { return v % 10 }), fn, graph.Name("p")).To(stream.NewCollectSink[int64]())
		return build(t, g, append([]graph.JobOption{graph.Parallelism(1), graph.Checkpoints(store, runTimeout)}, opts...)...)
	}
	asString := stream.NewValueState[string]("seen")
	first := job(actortest.GatedSource(stream.Generate(n, func(i int64) int64 { return i }), n/2, gate),
		stream.KeyedProcess[int64, int64, int64]{OnRecord: func(ctx stream.Context[int64], v int64, out stream.Emitter[int64]) error {
			asString.Set(ctx, "x")
			return nil
		}})
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	for statsOf(t, first, "src").In < n/2 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := first.Savepoint(ctx, "strings"); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done

	var dl letters
	asInt := stream.NewValueState[int64]("seen")
	second := job(stream.Generate(n, func(i int64) int64 { return i }),
		stream.KeyedProcess[int64, int64, int64]{OnRecord: func(ctx stream.Context[int64], v int64, out stream.Emitter[int64]) error {
			c, _ := asInt.Get(ctx)
			asInt.Set(ctx, c+1)
			return nil
		}}, graph.FromSavepoint(store, "strings"), dl.option())
	err = second.Run(context.Background())
	var se *stream.StateError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `decode state "seen"`) {
		t.Fatalf("Run = %v; want a *stream.StateError decoding state \"seen\"", err)
	}
	if ds := dl.all(); len(ds) != 0 {
		t.Errorf("%d dead letters, e.g. %+v; a state that does not decode is no dead letter", len(ds), ds[0])
	}
}
