package graph_test

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// unlistable is a real checkpoint store whose List fails: Build, which looks for the newest
// checkpoint, fails on it; Plan, which reads none, does not.
type unlistable struct{ *persistence.DirCheckpoints }

func (unlistable) List(context.Context) ([]uint64, error) { return nil, errors.New("list refused") }

// closeCounting is a source of n ints per split whose splits count their Close calls.
type closeCounting struct{ closed *atomic.Int64 }

func (s closeCounting) Splits(n int) ([]stream.Split[int64], error) {
	inner, err := stream.Generate(int64(n), func(i int64) int64 { return i }).Splits(n)
	if err != nil {
		return nil, err
	}
	out := make([]stream.Split[int64], len(inner))
	for i, sp := range inner {
		out[i] = countingSplit{sp, s.closed}
	}
	return out, nil
}

type countingSplit struct {
	stream.Split[int64]
	closed *atomic.Int64
}

func (s countingSplit) Close() error { s.closed.Add(1); return s.Split.Close() }

// Offset and Seek pass the generator's replay on: the job takes checkpoints.
func (s countingSplit) Offset() ([]byte, error) {
	return s.Split.(interface{ Offset() ([]byte, error) }).Offset()
}
func (s countingSplit) Seek(offset []byte) error {
	return s.Split.(interface{ Seek([]byte) error }).Seek(offset)
}

func TestPlan(t *testing.T) {
	dir, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var closed atomic.Int64
	newGraph := func() *graph.Graph {
		g := graph.New("plan")
		src := graph.From(g, stream.Source[int64](closeCounting{&closed}), graph.Name("numbers"))
		sums := graph.Count(graph.KeyBy(src, func(i int64) int64 { return i % 5 }), graph.Name("count"))
		sums.To(stream.NewCollectSink[stream.KV[int64, int64]](), graph.Name("out"))
		return g
	}
	opts := []graph.JobOption{quiet, graph.Parallelism(3), graph.MaxKeyGroups(16)}

	g := newGraph()
	planned, err := g.Plan(append(opts, graph.Checkpoints(unlistable{dir}, time.Second))...)
	if err != nil {
		t.Fatalf("Plan with a store that cannot list: %v (Plan must read no checkpoint)", err)
	}
	if got := closed.Load(); got != 3 {
		t.Errorf("Plan closed %d splits, want all 3 it opened", got)
	}
	if _, err := g.Build(append(opts, graph.Checkpoints(unlistable{dir}, time.Second))...); err == nil {
		t.Error("Build with a store that cannot list: no error; the test's store does not fail as it should")
	}
	job := build(t, g, append(opts, graph.Checkpoints(dir, time.Second))...)
	if want := job.Describe(); !reflect.DeepEqual(planned, want) {
		t.Errorf("Plan:\n%+v\nBuild's Describe:\n%+v", planned, want)
	}
	if len(planned.Vertices) != 2 || planned.Vertices[0].Instances != 3 || planned.Vertices[1].Instances != 16 {
		t.Errorf("Plan's vertices %+v: want the source with 3 splits and the count with 16 key groups", planned.Vertices)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := job.Run(ctx); err != nil { // the graph Plan described still builds and runs
		t.Fatal(err)
	}

	bad := graph.New("bad")
	graph.From(bad, stream.Slice([]int{1}))
	if _, err := bad.Plan(graph.Parallelism(0)); err == nil {
		t.Error("Plan of a job with parallelism 0: no error")
	}
}
