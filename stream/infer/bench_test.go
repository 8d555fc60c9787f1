package infer_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
)

// BenchmarkSlowModelMemory runs a model that takes 10 ms per request over records of 4 KiB:
// the source is far faster, so without backpressure the heap would hold most of the input.
// The peak heap stays flat as the input grows (the exchange's credits and Concurrency bound
// what waits and what is in flight):
//
//	go test -run '^$' -bench SlowModelMemory -benchtime 1x ./stream/infer/
func BenchmarkSlowModelMemory(b *testing.B) {
	const payload = 4 << 10
	for _, n := range []int64{10_000, 40_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			for range b.N {
				slow := infer.Func(func(ctx context.Context, rows [][]float32) ([][]float32, error) {
					select {
					case <-time.After(10 * time.Millisecond):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
					out := make([][]float32, len(rows))
					for i := range rows {
						out[i] = rows[i][:1]
					}
					return out, nil
				})
				g := graph.New("slow")
				src := stream.Generate(n, func(i int64) []byte {
					p := make([]byte, payload)
					p[0] = byte(i)
					return p
				})
				var got atomic.Int64
				infer.Stage(graph.From(g, src), slow, func(p []byte) []float32 { return []float32{float32(p[0])} }, infer.MaxBatch(64), infer.Concurrency(4)).
					To(stream.FuncSink(func(recs []stream.Record[infer.Scored[[]byte]]) error { got.Add(int64(len(recs))); return nil }))

				runtime.GC()
				var base runtime.MemStats
				runtime.ReadMemStats(&base)
				var peak atomic.Uint64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					var ms runtime.MemStats
					for {
						select {
						case <-stop:
							return
						case <-time.After(5 * time.Millisecond):
						}
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > peak.Load() {
							peak.Store(ms.HeapInuse)
						}
					}
				})
				start := time.Now()
				run(b, g, graph.Parallelism(1), graph.BatchSize(256))
				elapsed := time.Since(start)
				close(stop)
				wg.Wait()
				if got.Load() != n {
					b.Fatalf("%d scored of %d", got.Load(), n)
				}
				b.ReportMetric(float64(n*payload)/(1<<20), "input-MiB")
				b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapInuse))/(1<<20), "peak-heap-growth-MiB")
				b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
			}
		})
	}
}
