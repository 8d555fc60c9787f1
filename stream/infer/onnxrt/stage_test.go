package onnxrt_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
	"github.com/eddyflow/eddy/stream/infer/onnxrt"
	"github.com/eddyflow/eddy/stream/infer/onnxrt/onnxrttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// generationModel is y = [x0, gen]: its second output says which model scored the row.
func generationModel(t *testing.T, gen int) *onnxrt.Model {
	t.Helper()
	data, err := onnxmodel.Linear([][]float32{{1, 0}}, []float32{0, float32(gen)}, onnxmodel.Options{Version: int64(gen)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxrt.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Hot swap of ONNX sessions under load: each swap loads a new session while the job runs,
// and the replaced one is destroyed only once the batches that took it are done (a session
// destroyed under a running batch would crash the process, not fail a test).
func TestStageHotSwapsSessions(t *testing.T) {
	onnxrttest.Require(t)
	const n, swaps = 200_000, 5
	vs := infer.NewVersions()
	if err := vs.Set("m", generationModel(t, 0), 1); err != nil {
		t.Fatal(err)
	}
	var progress atomic.Int64
	g := graph.New("onnx-swap")
	src := stream.Generate(n, func(i int64) int64 { return i })
	scored := infer.Stage(graph.From(g, src), vs, func(i int64) []float32 { return []float32{float32(i)} }, infer.MaxBatch(128), infer.Concurrency(2))
	seen := make([]bool, n)
	perGen := make([]int, swaps+1)
	var mu sync.Mutex
	bad := 0
	scored.To(stream.FuncSink(func(recs []stream.Record[infer.Scored[int64]]) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			id := r.Value.In
			if seen[id] || r.Value.Output[0] != float32(id) {
				bad++
			}
			seen[id] = true
			perGen[int(r.Value.Output[1])]++
		}
		progress.Add(int64(len(recs)))
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 1; k <= swaps; k++ {
			for progress.Load() < int64(k)*n/(swaps+1) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Millisecond):
				}
			}
			if err := vs.Set("m", generationModel(t, k), 1); err != nil {
				t.Error(err)
			}
		}
	})
	var dead atomic.Int64
	err := g.Run(context.Background(), graph.Parallelism(2), graph.BatchSize(512),
		graph.Logger(slog.New(slog.DiscardHandler)), graph.DeadLetters(func(stream.DeadLetter) { dead.Add(1) }))
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if bad > 0 || dead.Load() > 0 {
		t.Fatalf("%d records scored twice or wrong, %d dead letters", bad, dead.Load())
	}
	if err := vs.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for k, c := range perGen {
		total += c
		if c == 0 {
			t.Errorf("generation %d scored nothing", k)
		}
	}
	if total != n || vs.Stats()["m"].Records != n {
		t.Errorf("%d scored (stats %d), want %d", total, vs.Stats()["m"].Records, n)
	}
	t.Logf("per generation: %v", perGen)
}
