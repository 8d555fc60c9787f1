package kserve_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/kserve"
	"github.com/eddyflow/eddy/stream/infer/kserve/kservetest"
)

// BenchmarkStageOverHTTP scores b.N records through the stage against a v2 server in the
// process (loopback HTTP, JSON), with batches of 64 and of 1:
//
//	go test -run '^$' -bench StageOverHTTP -benchtime 20000x ./stream/infer/kserve/
func BenchmarkStageOverHTTP(b *testing.B) {
	for _, batch := range []int{64, 1} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			srv := kservetest.NewServer("m", 2, infer.RowFunc(affine))
			defer srv.Close()
			c, err := kserve.Dial(context.Background(), srv.URL, "m")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			g := graph.New("http")
			src := stream.Generate(int64(b.N), func(i int64) rec { return rec{ID: i, X: []float32{float32(i), 1}} })
			var got atomic.Int64
			infer.Stage(graph.From(g, src), c, func(r rec) []float32 { return r.X }, infer.MaxBatch(batch), infer.Concurrency(4)).
				To(stream.FuncSink(func(recs []stream.Record[infer.Scored[rec]]) error { got.Add(int64(len(recs))); return nil }))
			b.ResetTimer()
			start := time.Now()
			if err := g.Run(context.Background(), graph.Parallelism(1), graph.BatchSize(batch*4), graph.Logger(slog.New(slog.DiscardHandler))); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			if got.Load() != int64(b.N) {
				b.Fatalf("%d scored of %d", got.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(srv.Conns.Load()), "connections")
			b.ReportMetric(0, "ns/op")
		})
	}
}
