package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newCluster starts an in-process broker (kfake: the real Kafka protocol) with topics of
// partitions partitions each, closed at the end of the test.
func newCluster(t testing.TB, partitions int32, topics ...string) (*kfake.Cluster, Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, Config{Brokers: c.ListenAddrs()}
}

// keyed is the input of the end-to-end tests.
type keyed struct {
	Key string `json:"key"`
}

// produceKeys writes n records {"key":K} keyed by K with key(i) for K.
func produceKeys(t testing.TB, cfg Config, topic string, n int, key func(i int) string) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := map[string]int{}
	ctx := context.Background()
	for i := range n {
		k := key(i)
		want[k]++
		cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: fmt.Appendf(nil, `{"key":%q}`, k)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return want
}

// seqOut is the output of the end-to-end tests.
type seqOut struct {
	Key string `json:"key"`
	Seq int64  `json:"seq"`
}

// readCommitted reads topic from the start with a read_committed consumer until it has
// seen want records and then nothing more for quiet, or until deadline.
func readCommitted(t testing.TB, cfg Config, topic string, want int, quiet time.Duration) []seqOut {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []seqOut
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		wait := 2 * time.Second
		if len(out) >= want {
			wait = quiet
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			var o seqOut
			if err := json.Unmarshal(r.Value, &o); err != nil {
				t.Errorf("output %q: %v", r.Value, err)
			}
			if string(r.Key) != o.Key {
				t.Errorf("output %q has key %q", r.Value, r.Key)
			}
			out = append(out, o)
			n++
		})
		if n == 0 && len(out) >= want {
			return out
		}
	}
	return out
}

// checkSeqs checks that out holds every (key, seq) for seq = 1..want[key] exactly once.
func checkSeqs(t testing.TB, out []seqOut, want map[string]int) {
	t.Helper()
	seen := map[seqOut]int{}
	for _, o := range out {
		seen[o]++
	}
	total, bad := 0, 0
	for k, c := range want {
		total += c
		for s := 1; s <= c; s++ {
			if got := seen[seqOut{k, int64(s)}]; got != 1 {
				if bad++; bad <= 10 {
					t.Errorf("key %s seq %d seen %d times", k, s, got)
				}
			}
		}
	}
	if len(out) != total {
		t.Errorf("%d output records, want %d", len(out), total)
	}
}
