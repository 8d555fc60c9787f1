package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// keyCountGraph is the job of the end-to-end tests: for each input {"key":K}, {"key":K,"seq":N}
// with N the count of K so far, into sink.
func keyCountGraph(cfg Config, in string, sink stream.Sink[seqOut], opts ...SourceOption) (*graph.Graph, *KafkaSource[keyed]) {
	g := graph.New("keycount")
	src := Source(cfg, []string{in}, Values(stream.JSON[keyed]()), opts...)
	recs := graph.From(g, src, graph.Name("input"))
	counts := graph.Count(graph.KeyBy(recs, func(k keyed) string { return k.Key }, graph.WithCodec(stream.JSON[keyed]())),
		graph.Name("count"), graph.Emit(stream.EmitEveryUpdate))
	graph.Map(counts, func(kv stream.KV[string, int64]) seqOut { return seqOut{kv.Key, kv.Value} }, graph.Name("seq")).
		To(sink, graph.Name("output"))
	return g, src
}

func seqEncoder() Encoder[seqOut] {
	return KeyedValues(stream.JSON[seqOut](), func(o seqOut) string { return o.Key })
}

// runUntil runs job until done says so (polled), then cancels it.
func runUntil(t *testing.T, job *graph.Job, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- job.Run(ctx) }()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case err := <-errc:
			cancel()
			t.Fatalf("job ended before it was done: %v", err)
		case <-deadline:
			cancel()
			<-errc
			t.Fatal("job not done within 60s")
		case <-tick.C:
		}
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("job: %v", err)
	}
}

// The whole path on one run: source splits over 4 partitions, keyed counts, transactional
// output; a read_committed reader sees each (key, seq) once.
func TestExactlyOnceEndToEnd(t *testing.T) {
	_, cfg := newCluster(t, 4, "in", "out")
	want := produceKeys(t, cfg, "in", 20_000, func(i int) string { return fmt.Sprintf("k%d", i%37) })
	sink, err := ExactlyOnce(cfg, "out", seqEncoder(), "e2e")
	if err != nil {
		t.Fatal(err)
	}
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g, _ := keyCountGraph(cfg, "in", sink)
	job, err := g.Build(graph.Parallelism(2), graph.Checkpoints(store, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runUntil(t, job, func() bool { return sink.Stats().Committed == 20_000 })
	if err := sink.Err(); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, readCommitted(t, cfg, "out", 20_000, 300*time.Millisecond), want)
}
