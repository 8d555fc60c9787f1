package infer_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
)

// TestStageScript runs testdata/stage.txt: the stage's batching, ordering, retries and dead
// letters as a script. Commands:
//
//	fail id=N times=K [permanent]   the request holding record N fails K times
//	slow id=N                        the request holding record N takes 100 ms
//	reset                            no more faults
//	run records=N [max-batch=B] [concurrency=C] [batch-size=S] [retries=R] [unordered]
//
// run prints the sizes of the successful requests (sorted: they run concurrently), the ids
// in the order they came out, and the dead letters by id.
func TestStageScript(t *testing.T) {
	datadriven.RunTest(t, "testdata/stage.txt", func(t *testing.T, d *datadriven.TestData) string {
		return script.handle(t, d)
	})
}

type fault struct {
	left      int
	permanent bool
	slow      bool
}

type stageScript struct {
	// mu guards faults and sizes, used by the model's concurrent calls.
	mu     sync.Mutex
	faults map[int64]*fault
	sizes  []int
}

var script = &stageScript{faults: map[int64]*fault{}}

func (s *stageScript) handle(t *testing.T, d *datadriven.TestData) string {
	arg := func(name string, def int) int {
		if !d.HasArg(name) {
			return def
		}
		var v int
		d.ScanArgs(t, name, &v)
		return v
	}
	switch d.Cmd {
	case "fail":
		f := &fault{left: arg("times", 1), permanent: d.HasArg("permanent")}
		s.faults[int64(arg("id", 0))] = f
		return "ok"
	case "slow":
		s.faults[int64(arg("id", 0))] = &fault{slow: true}
		return "ok"
	case "reset":
		s.faults = map[int64]*fault{}
		return "ok"
	case "run":
		return s.run(t, int64(arg("records", 10)), arg("max-batch", 4), arg("concurrency", 2), arg("batch-size", 512), arg("retries", 2), d.HasArg("unordered"))
	default:
		return fmt.Sprintf("unknown command %q", d.Cmd)
	}
}

func (s *stageScript) infer(ctx context.Context, rows [][]float32) ([][]float32, error) {
	s.mu.Lock()
	var slow bool
	var err error
	for _, r := range rows {
		f := s.faults[int64(r[0])]
		switch {
		case f == nil:
		case f.slow:
			slow = true
		case f.left > 0:
			f.left--
			err = fmt.Errorf("record %d fails", int64(r[0]))
			if f.permanent {
				err = infer.Permanent(err)
			}
		}
	}
	if err == nil {
		s.sizes = append(s.sizes, len(rows))
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if slow {
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return infer.RowFunc(affine).Infer(ctx, rows)
}

func (s *stageScript) run(t *testing.T, n int64, maxBatch, concurrency, batchSize, retries int, unordered bool) string {
	s.sizes = nil
	g := graph.New("script")
	opts := []infer.Option{infer.MaxBatch(maxBatch), infer.Concurrency(concurrency), infer.Retries(retries), infer.Backoff(time.Millisecond, time.Millisecond), infer.Name("model")}
	if unordered {
		opts = append(opts, infer.Unordered())
	}
	out := stream.NewCollectSink[infer.Scored[point]]()
	infer.Stage(graph.From(g, points(n)), infer.Func(s.infer), features, opts...).To(out)
	var dl letters
	run(t, g, graph.Parallelism(1), graph.BatchSize(batchSize), dl.option())

	var b strings.Builder
	s.mu.Lock()
	sizes := slices.Clone(s.sizes)
	s.mu.Unlock()
	sort.Ints(sizes)
	fmt.Fprintf(&b, "requests: %v\n", sizes)
	var ids []string
	for _, r := range out.Values() {
		ids = append(ids, fmt.Sprint(r.In.ID))
	}
	fmt.Fprintf(&b, "out: %s\n", strings.Join(ids, " "))
	dead := dl.all()
	slices.SortFunc(dead, func(a, b stream.DeadLetter) int { return int(a.Value.(point).ID - b.Value.(point).ID) })
	for _, d := range dead {
		fmt.Fprintf(&b, "dead %d: %s\n", d.Value.(point).ID, d.Reason)
	}
	return b.String()
}
