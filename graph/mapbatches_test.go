package graph_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// TestMapBatches: f sees whole batches, may emit from goroutines of its own, and its rejects
// become dead letters with the record.
func TestMapBatches(t *testing.T) {
	g := graph.New("batches")
	var mu sync.Mutex
	var sizes []int
	out := graph.MapBatches(graph.From(g, count(1000), graph.Name("src")), func(ctx context.Context, in []stream.Record[int64], emit func(stream.Record[int64]), reject func(stream.Record[int64], string)) {
		mu.Lock()
		sizes = append(sizes, len(in))
		mu.Unlock()
		var wg sync.WaitGroup
		for _, r := range in {
			wg.Go(func() {
				if r.Value%100 == 7 {
					reject(r, "ends in 07")
					return
				}
				emit(stream.Record[int64]{Value: r.Value * 10, Time: r.Time})
			})
		}
		wg.Wait()
	}, graph.Name("times10"))
	got := stream.NewCollectSink[int64]()
	out.To(got)
	var dl letters
	run(t, g, graph.BatchSize(100), dl.option())

	var want []int64
	for i := int64(0); i < 1000; i++ {
		if i%100 != 7 {
			want = append(want, i*10)
		}
	}
	if vs := sorted(got.Values()); !slices.Equal(vs, want) {
		t.Errorf("got %d values, want %d", len(vs), len(want))
	}
	letters := dl.all()
	if len(letters) != 10 {
		t.Fatalf("%d dead letters, want 10: %v", len(letters), letters)
	}
	for _, d := range letters {
		if d.Stage != "times10" || d.Reason != "ends in 07" || d.Value.(int64)%100 != 7 {
			t.Errorf("dead letter %+v", d)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		total += n
		if n > 100 {
			t.Errorf("a batch of %d records, more than the batch size 100", n)
		}
	}
	if total != 1000 || len(sizes) >= 1000 {
		t.Errorf("%d calls over %d records: want whole batches", len(sizes), total)
	}
}

// TestMapBatchesPanic: a panic costs the batch, every record of it a dead letter, and none
// of what f emitted before it goes on.
func TestMapBatchesPanic(t *testing.T) {
	g := graph.New("batch-panic")
	out := graph.MapBatches(graph.From(g, count(300)), func(_ context.Context, in []stream.Record[int64], emit func(stream.Record[int64]), _ func(stream.Record[int64], string)) {
		for _, r := range in {
			emit(r)
			if r.Value == 150 {
				panic("boom")
			}
		}
	}, graph.Name("fragile"))
	got := stream.NewCollectSink[int64]()
	out.To(got)
	var dl letters
	run(t, g, graph.BatchSize(100), dl.option())
	letters := dl.all()
	if len(got.Values())+len(letters) != 300 {
		t.Errorf("%d out + %d dead letters, want 300 in all", len(got.Values()), len(letters))
	}
	if slices.Contains(got.Values(), 150) {
		t.Error("the record whose batch panicked went on")
	}
	for _, d := range letters {
		if !strings.Contains(d.Reason, "panic in the batch function: boom") {
			t.Errorf("dead letter %+v", d)
		}
	}
	if len(letters) == 0 || len(letters) > 100 {
		t.Errorf("%d dead letters, want the one batch of the panic", len(letters))
	}
}

func TestInvalid(t *testing.T) {
	g := graph.New("invalid")
	s := graph.From(g, count(3))
	graph.Invalid(s, nil)
	graph.Invalid(s, errors.New("stage x: bad max batch -1"))
	s.To(stream.NewCollectSink[int64]())
	if _, err := g.Build(quiet); err == nil || !strings.Contains(err.Error(), "stage x: bad max batch -1") {
		t.Errorf("Build: %v; want the reported error", err)
	}
}
