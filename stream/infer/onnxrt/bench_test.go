package onnxrt_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
	"github.com/eddyflow/eddy/stream/infer/onnxrt"
	"github.com/eddyflow/eddy/stream/infer/onnxrt/onnxrttest"
)

// The benchmark's model: linear, 256 features to 64 outputs (16 K weights), in ONNX Runtime.
const benchIn, benchOut = 256, 64

func benchModel(b *testing.B) *onnxrt.Model {
	b.Helper()
	onnxrttest.Require(b)
	w := make([][]float32, benchIn)
	for i := range w {
		w[i] = make([]float32, benchOut)
		for j := range w[i] {
			w[i][j] = float32((i*benchOut+j)%17-8) / 64
		}
	}
	data, err := onnxmodel.Linear(w, make([]float32, benchOut), onnxmodel.Options{})
	if err != nil {
		b.Fatal(err)
	}
	m, err := onnxrt.Load(data)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func benchRow(i int64) []float32 {
	row := make([]float32, benchIn)
	for j := range row {
		row[j] = float32((int(i)+j)%10) / 10
	}
	return row
}

// timed is a record that knows when its source emitted it.
type timed struct {
	At  int64 // Unix ns
	Row []float32
}

// latencies reports the p50 and p99 of ds, in ms, and records/s over elapsed.
func report(b *testing.B, n int, elapsed time.Duration, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(ds[len(ds)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100])/1e6, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkInfer compares, in one run, the inference stage with dynamic batching, the stage
// with batches of one, and the runtime called in a plain loop with the same batch size.
// b.N is the number of records:
//
//	go test -run '^$' -bench BenchmarkInfer -benchtime 100000x ./stream/infer/onnxrt/
func BenchmarkInfer(b *testing.B) {
	const concurrency = 2
	for _, batch := range []int{64, 1} {
		b.Run(fmt.Sprintf("stage/batch=%d", batch), func(b *testing.B) {
			m := benchModel(b)
			n := b.N
			g := graph.New("bench")
			src := stream.Generate(int64(n), func(i int64) timed { return timed{At: time.Now().UnixNano(), Row: benchRow(i)} })
			scored := infer.Stage(graph.From(g, src), m, func(t timed) []float32 { return t.Row }, infer.MaxBatch(batch), infer.Concurrency(concurrency))
			ds := make([]time.Duration, 0, n)
			var mu sync.Mutex
			scored.To(stream.FuncSink(func(recs []stream.Record[infer.Scored[timed]]) error {
				now := time.Now().UnixNano()
				mu.Lock()
				for _, r := range recs {
					ds = append(ds, time.Duration(now-r.Value.In.At))
				}
				mu.Unlock()
				return nil
			}))
			b.ResetTimer()
			start := time.Now()
			err := g.Run(context.Background(), graph.Parallelism(1), graph.BatchSize(batch*concurrency), graph.Linger(time.Millisecond),
				graph.Logger(slog.New(slog.DiscardHandler)))
			elapsed := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if len(ds) != n {
				b.Fatalf("%d scored of %d", len(ds), n)
			}
			report(b, n, elapsed, ds)
		})
	}
	b.Run("loop/batch=64", func(b *testing.B) {
		m := benchModel(b)
		n := b.N
		ds := make([]time.Duration, 0, n)
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for lo := 0; lo < n; lo += 64 {
			hi := min(lo+64, n)
			t0 := time.Now()
			rows := make([][]float32, 0, hi-lo)
			for i := lo; i < hi; i++ {
				rows = append(rows, benchRow(int64(i)))
			}
			if _, err := m.Infer(ctx, rows); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			for range rows {
				ds = append(ds, d)
			}
		}
		report(b, n, time.Since(start), ds)
	})
}
