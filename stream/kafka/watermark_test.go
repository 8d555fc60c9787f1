package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// click is the input of the watermark test: a user and the Kafka timestamp as event time.
type click struct {
	User string `json:"user"`
}

// produceAt writes one click of user to partition p with event time at (Unix ms).
func produceAt(t *testing.T, cl *kgo.Client, p int32, user string, at int64) {
	t.Helper()
	r := &kgo.Record{Topic: "clicks", Partition: p, Value: fmt.Appendf(nil, `{"user":%q}`, user), Timestamp: time.UnixMilli(at)}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds (a running job's output), failing after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a running job, not timing event time
	}
}

// Per-partition watermarks: the source's watermark is the minimum over its partitions, so a
// partition with no records holds windows back, until it has been idle for IdleAfter (on
// the source's manual clock); then windows fire on the busy partition's watermark. A
// partition added while the job runs is found on the next discovery and read from its
// first record, and its records land in their windows.
func TestPerPartitionWatermarksIdlenessAndNewPartition(t *testing.T) {
	_, cfg := newCluster(t, 2, "clicks")
	producer, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { producer.Close() }()
	clock := stream.NewManualClock(time.Unix(1_000_000, 0))
	src := Source(cfg, []string{"clicks"}, Values(stream.JSON[click]()),
		Watermarks(stream.Monotonous[click]()), IdleAfter(time.Minute), DiscoverEvery(time.Hour), SourceClock(clock))
	g := graph.New("clicks")
	clicks := graph.From(g, src)
	perUser := graph.KeyBy(clicks, func(c click) string { return c.User }, graph.WithCodec(stream.JSON[click]()))
	counts := graph.Window(perUser, stream.Tumbling(10*time.Second), agg.Count[click]())
	out := stream.NewCollectSink[stream.WindowResult[string, int64]]()
	counts.To(out)
	job, err := g.Build(graph.Parallelism(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- job.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("job: %v", err)
		}
	}()

	partition := func(p int32) PartitionStats {
		for _, ps := range src.Stats().Partitions {
			if ps.Partition == p {
				return ps
			}
		}
		return PartitionStats{Watermark: stream.MinWatermark}
	}
	// Partition 0 moves to 25s; partition 1 has nothing.
	for _, at := range []int64{1_000, 4_000, 12_000, 25_000} {
		produceAt(t, producer, 0, "ann", at)
	}
	waitFor(t, "partition 0 read", func() bool { return partition(0).Records == 4 })
	if p0, p1 := partition(0), partition(1); p0.Watermark != 25_000 || p1.Watermark != stream.MinWatermark || p1.Idle {
		t.Fatalf("partition 0 %+v, partition 1 %+v: want 0 at 25000, 1 without a watermark and not idle", p0, p1)
	}
	if got := out.Values(); len(got) != 0 {
		t.Fatalf("windows fired while the empty partition held the watermark back: %v", got)
	}

	// A minute later (the source's clock) partition 1 is idle; partition 0 is busy again
	// (a partition idle too would leave no watermark to follow): [0,10s) and [10s,20s)
	// fire.
	clock.Advance(time.Minute)
	produceAt(t, producer, 0, "ann", 26_000)
	waitFor(t, "partition 0 read", func() bool { return partition(0).Records == 5 })
	if !partition(1).Idle {
		t.Fatal("partition 1 not idle after a minute without records")
	}
	waitFor(t, "windows up to 20s", func() bool { return len(out.Values()) >= 2 })
	want := []stream.WindowResult[string, int64]{{Key: "ann", Start: 0, End: 10_000, Value: 2}, {Key: "ann", Start: 10_000, End: 20_000, Value: 1}}
	if got := sortedWindows(out.Values()); !slices.Equal(got, want) {
		t.Fatalf("windows %v, want %v", got, want)
	}

	// A third partition appears; the next discovery (an hour later on the source's clock)
	// reads it from its first record. Its records at 21s and 22s count in [20s,30s).
	adm := kadm.NewClient(producer)
	if _, err := adm.CreatePartitions(ctx, 1, "clicks"); err != nil {
		t.Fatal(err)
	}
	producer.Close() // one that knows the new partition
	if producer, err = kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatal(err)
	}
	produceAt(t, producer, 2, "ann", 21_000)
	produceAt(t, producer, 2, "bob", 22_000)
	clock.Advance(time.Hour)
	waitFor(t, "partition 2 read", func() bool { return partition(2).Records == 2 })
	// Partition 0 moves past 30s; partition 2 too (partition 1 is still idle).
	produceAt(t, producer, 0, "ann", 31_000)
	produceAt(t, producer, 2, "bob", 33_000)
	waitFor(t, "window [20s,30s)", func() bool { return len(out.Values()) >= 4 })
	want = append(want, stream.WindowResult[string, int64]{Key: "ann", Start: 20_000, End: 30_000, Value: 3},
		stream.WindowResult[string, int64]{Key: "bob", Start: 20_000, End: 30_000, Value: 1})
	if got := sortedWindows(out.Values()); !slices.Equal(got, want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
}

func sortedWindows(ws []stream.WindowResult[string, int64]) []stream.WindowResult[string, int64] {
	slices.SortFunc(ws, func(a, b stream.WindowResult[string, int64]) int {
		if a.Start != b.Start {
			return int(a.Start - b.Start)
		}
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return ws
}
