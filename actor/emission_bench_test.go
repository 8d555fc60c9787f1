package actor_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/jobruntime"
	"github.com/eddyflow/eddy/stream"
)

// BenchmarkTwoExchanges runs Generate → KeyBy → Count → Map → KeyBy → Count → sink on the sync
// driver (one goroutine, so the figure is steadier than examples/bench's on a shared
// machine): every batch crosses two exchanges, and the first count stage, which has a
// channel out, handles each batch as coroutine work. It reports ns per source record.
func BenchmarkTwoExchanges(b *testing.B) {
	const n = 1 << 20
	for b.Loop() {
		g := graph.New("bench")
		src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i }))
		first := graph.Count(graph.KeyBy(src, func(i int64) int64 { return i % 4096 }))
		keys := graph.Map(first, func(kv stream.KV[int64, int64]) int64 { return kv.Key })
		second := graph.Count(graph.KeyBy(keys, func(k int64) int64 { return k % 64 }))
		second.To(stream.FuncSink(func([]stream.Record[stream.KV[int64, int64]]) error { return nil }))
		job, err := g.Build(graph.Parallelism(2), graph.Clock(stream.NewManualClock(time.Unix(0, 0))), graph.Logger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		d, err := actor.NewSyncDriver(jobruntime.Of(job))
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Start(); err != nil {
			b.Fatal(err)
		}
		if !d.Done() {
			b.Fatal("the job did not finish")
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}
