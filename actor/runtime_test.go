package actor_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

func TestMain(m *testing.M) {
	// Proto.Actor counts dead letters in a goroutine that ends by itself a second after
	// the last one (TestTwoNodesDisagree makes some, on purpose).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

// slowSink keeps the latest count per key and spins per record, so that it cannot keep up
// with the source.
type slowSink struct {
	mu      sync.Mutex
	counts  map[uint64]int64
	updates atomic.Int64
	perRec  time.Duration
	first   chan struct{}
	once    sync.Once
}

func (s *slowSink) WriteBatch(recs []stream.Record[stream.KV[uint64, int64]]) error {
	for range recs {
		for end := time.Now().Add(s.perRec); time.Now().Before(end); {
		}
	}
	s.mu.Lock()
	for _, r := range recs {
		s.counts[r.Value.Key] = r.Value.Value
	}
	s.mu.Unlock()
	s.updates.Add(int64(len(recs)))
	if s.first != nil {
		s.once.Do(func() { close(s.first) })
	}
	return nil
}

func (s *slowSink) Close() error { return nil }

// A sink far slower than the source slows the source: receivers' queues never hold more
// than senders × credits batches, the sources wait for credit, and nothing is lost.
func TestBackpressureBoundsQueues(t *testing.T) {
	const n, keys, splits, credits = 100_000, 97, 2, 2
	g := graph.New("bp")
	src := graph.From(g, stream.Generate(n, func(i int64) uint64 { return uint64(i) % keys }))
	counts := graph.Count(graph.KeyBy(src, func(k uint64) uint64 { return k }), graph.Emit(stream.EmitEveryUpdate), graph.Name("count"))
	sink := &slowSink{counts: map[uint64]int64{}, perRec: 2 * time.Microsecond}
	counts.To(sink)
	job, err := g.Build(graph.Parallelism(splits), graph.Credits(credits), graph.BatchSize(64), graph.MaxKeyGroups(8))
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.updates.Load(); got != n {
		t.Errorf("sink got %d updates, want %d (one per record)", got, n)
	}
	for k := range uint64(keys) {
		want := int64(n / keys)
		if k < n%keys {
			want++
		}
		if sink.counts[k] != want {
			t.Errorf("key %d: count %d, want %d", k, sink.counts[k], want)
		}
	}
	stats := job.Stats()
	source, keyed := stats[0], stats[1]
	if keyed.MaxQueued > splits*credits {
		t.Errorf("a key group held %d batches; credits bound it to %d", keyed.MaxQueued, splits*credits)
	}
	if keyed.MaxQueued == 0 {
		t.Errorf("no batch was ever queued: the test measured nothing")
	}
	if source.Backpressure == 0 {
		t.Errorf("the source never waited for credit, though the sink is slower")
	}
	if source.In != n || keyed.In != n || keyed.Out != n {
		t.Errorf("counters: source in %d, keyed in %d out %d; want %d each", source.In, keyed.In, keyed.Out, n)
	}
}

// Cancelling the context stops a job whose source never ends, and Run returns promptly
// with the context's error; TestMain checks no goroutine is left.
func TestCancelStopsUnboundedJob(t *testing.T) {
	ch := make(chan uint64)
	g := graph.New("cancel")
	src := graph.From(g, stream.Channel(ch))
	counts := graph.Count(graph.KeyBy(src, func(k uint64) uint64 { return k }))
	sink := &slowSink{counts: map[uint64]int64{}, first: make(chan struct{})}
	counts.To(sink)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, graph.Linger(time.Millisecond)) }()
	feed := make(chan struct{})
	go func() {
		defer close(feed)
		for i := uint64(0); ; i++ {
			select {
			case ch <- i % 10:
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-sink.first: // the linger sent a partial batch: the job runs
	case <-time.After(10 * time.Second):
		t.Fatal("no output within 10s")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	<-feed
}

// Under FailJob a failing record fails the job, and Run says which stage failed and why.
func TestFailJobPolicy(t *testing.T) {
	g := graph.New("fail")
	src := graph.From(g, stream.Generate(10_000, func(i int64) int64 { return i }))
	m := graph.TryMap(src, func(v int64) (int64, error) {
		if v == 5000 {
			return 0, errors.New("five thousand")
		}
		return v, nil
	}, graph.Name("picky"))
	m.To(stream.NewCollectSink[int64]())
	err := g.Run(context.Background(), graph.OnError(actor.FailJob), graph.DeadLetters(func(stream.DeadLetter) {}))
	if err == nil || !strings.Contains(err.Error(), "picky") || !strings.Contains(err.Error(), "five thousand") {
		t.Fatalf("Run returned %v, want an error naming stage picky and the reason", err)
	}
}

// An identity placed on another node is refused by the local runtime, before it runs.
func TestRemotePlacementRefused(t *testing.T) {
	plan := &actor.Plan{Job: "x", Vertices: []*actor.Vertex{{Name: "v", Instances: 1, Source: true,
		New: func(env *actor.Env) (actor.Task, error) { return actor.NopTask{}, nil }}}}
	aj, err := actor.NewJob(plan, actor.Config{Placement: elsewhere{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := aj.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "remote") {
		t.Fatalf("Run returned %v, want a refusal of remote placement", err)
	}
}

type elsewhere struct{}

func (elsewhere) Node(actor.Identity) string { return "10.0.0.9:8090" }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  actor.Config
		err  string
	}{
		{"defaults", actor.Config{}, ""},
		{"negative parallelism", actor.Config{Parallelism: -1}, "parallelism -1 is negative"},
		{"negative batch", actor.Config{BatchSize: -5}, "batch size -5 is negative"},
		{"negative credits", actor.Config{Credits: -1}, "credits -1 is negative"},
		{"negative linger", actor.Config{Linger: -time.Second}, "linger -1s is negative"},
		{"bad policy", actor.Config{ErrorPolicy: 9}, "unknown error policy 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.cfg.BatchSize != 512 || tt.cfg.Credits != 4 || tt.cfg.MaxKeyGroups != 128 || tt.cfg.Linger != 5*time.Millisecond || tt.cfg.Parallelism < 1 {
					t.Errorf("defaults not filled in: %+v", tt.cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate() = %v, want %q", err, tt.err)
			}
		})
	}
}

// Under backpressure at the end of input (a slow stage after a window stage, one credit per
// channel), no record is late and none is lost: the end of a channel, which moves its
// watermark to the end of time, waits in the receiver's queue behind the channel's batches.
func TestEndOfInputUnderBackpressure(t *testing.T) {
	const n = 20_000
	g := graph.New("eos")
	src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i }))
	stamped := graph.Timestamps(src, func(i int64) int64 { return i }, stream.Monotonous[int64]())
	counts := graph.Window(graph.KeyBy(stamped, func(i int64) int64 { return i % 7 }), stream.Tumbling(100*time.Millisecond), agg.Count[int64](), graph.Name("w"))
	type wr = stream.WindowResult[int64, int64]
	slow := graph.Process(graph.KeyBy(counts, func(r wr) int64 { return r.Start }, graph.WithCodec(stream.JSON[wr]())), stream.KeyedProcess[int64, wr, int64]{
		OnRecord: func(_ stream.Context[int64], r wr, out stream.Emitter[int64]) error {
			for end := time.Now().Add(20 * time.Microsecond); time.Now().Before(end); {
			}
			out.Emit(r.Value)
			return nil
		},
	})
	sum := stream.NewCollectSink[int64]()
	slow.To(sum)
	late := stream.NewCollectSink[int64]()
	graph.SideOutput(counts, stream.LateTag[int64]()).To(late)
	job, err := g.Build(graph.Parallelism(2), graph.Credits(1), graph.BatchSize(8), graph.MaxKeyGroups(4),
		graph.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, v := range sum.Values() {
		total += v
	}
	if late.Len() != 0 || total != n {
		t.Errorf("%d late records and %d counted; want 0 late and %d counted", late.Len(), total, n)
	}
}
