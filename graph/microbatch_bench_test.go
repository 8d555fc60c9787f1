package graph_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// BenchmarkMicroBatch compares continuous and micro-batch mode on one job (a keyed running
// count over 10,000 keys): throughput with an unpaced source, and end-to-end latency (from
// a record's creation at the source to its count update at the sink) at a fixed input rate
// of 100,000 records/s for 2 s. Run with
//
//	go test ./graph -run '^$' -bench MicroBatch -benchtime 1x
func BenchmarkMicroBatch(b *testing.B) {
	modes := []struct {
		name string
		opts []graph.JobOption
	}{
		{"continuous", nil},
		{"micro-batch-100ms", []graph.JobOption{graph.MicroBatch(100 * time.Millisecond)}},
		{"micro-batch-20ms", []graph.JobOption{graph.MicroBatch(20 * time.Millisecond)}},
	}
	for _, m := range modes {
		b.Run(m.name+"/throughput", func(b *testing.B) {
			const n = 5_000_000
			for b.Loop() {
				start := time.Now()
				runCounting(b, stream.Generate(n, func(i int64) stamped { return stamped{Key: i % 10_000} }), nil, m.opts)
				b.ReportMetric(n/time.Since(start).Seconds(), "records/s")
			}
		})
		b.Run(m.name+"/latency", func(b *testing.B) {
			const rate, seconds = 100_000, 2
			for b.Loop() {
				var mu sync.Mutex
				var lat []time.Duration
				src := &arrivals{n: rate * seconds, rate: rate, start: time.Now()}
				runCounting(b, src, func(recs []stream.Record[stamped]) {
					now := time.Now().UnixNano()
					mu.Lock()
					for _, r := range recs {
						lat = append(lat, time.Duration(now-r.Value.Created))
					}
					mu.Unlock()
				}, m.opts)
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
			}
		})
	}
}

// stamped is a record keyed by Key, created at Created (Unix ns).
type stamped struct {
	Key     int64
	Created int64
	Count   int64
}

// runCounting runs a keyed running count of src, each update with its record's creation time,
// into sink.
func runCounting(b *testing.B, src stream.Source[stamped], sink func([]stream.Record[stamped]), opts []graph.JobOption) {
	b.Helper()
	g := graph.New("modes")
	in := graph.From(g, src)
	counts := graph.Reduce(graph.KeyBy(in, func(s stamped) int64 { return s.Key }, graph.WithCodec(stream.JSON[stamped]())),
		func(acc, s stamped) stamped { return stamped{Key: s.Key, Created: s.Created, Count: acc.Count + 1} },
		graph.Emit(stream.EmitEveryUpdate))
	graph.Map(counts, func(kv stream.KV[int64, stamped]) stamped { return kv.Value }).To(stream.FuncSink(func(recs []stream.Record[stamped]) error {
		if sink != nil {
			sink(recs)
		}
		return nil
	}))
	job, err := g.Build(append([]graph.JobOption{graph.Parallelism(2), quiet}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		b.Fatal(fmt.Errorf("run: %w", err))
	}
}

// arrivals is a source of n records arriving at a fixed rate from start: record i arrives at
// start + i/rate, and a split hands out only records that have arrived (it returns none,
// after a short wait, when none has), as a queue or a Kafka partition would.
type arrivals struct {
	n, rate int64
	start   time.Time
}

func (a *arrivals) Splits(n int) ([]stream.Split[stamped], error) {
	out := make([]stream.Split[stamped], n)
	for j := range out {
		out[j] = &arrivalSplit{a: a, next: int64(j), step: int64(n)}
	}
	return out, nil
}

type arrivalSplit struct {
	a          *arrivals
	next, step int64
}

func (s *arrivalSplit) Read(ctx context.Context, max int, out stream.Output[stamped]) (int, error) {
	if s.next >= s.a.n {
		return 0, io.EOF
	}
	now := time.Now()
	k := 0
	for ; k < max && s.next < s.a.n; k++ {
		at := s.a.start.Add(time.Duration(s.next) * time.Second / time.Duration(s.a.rate))
		if at.After(now) {
			if k == 0 {
				select { // nothing has arrived: wait briefly, as a split may
				case <-ctx.Done():
				case <-time.After(min(time.Until(at), time.Millisecond)):
				}
			}
			break
		}
		out.Emit(stream.Record[stamped]{Value: stamped{Key: s.next % 10_000, Created: at.UnixNano()}})
		s.next += s.step
	}
	return k, nil
}

func (s *arrivalSplit) Close() error { return nil }
