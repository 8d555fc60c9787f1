package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// benchRecords is the input of every pipeline benchmark: {"key":K} over 1,000 keys in 4
// partitions.
const benchRecords = 200_000

// BenchmarkKeyCountPipeline compares, on one in-process broker and input, the job
// "kafka source → keyed count → kafka sink" in Eddy with a plain franz-go loop doing the
// same (consume, count per key in a map, produce {"key":K,"seq":N}), each with at-least-once
// and exactly-once output. Each variant reads the whole input and writes a fresh topic; the
// metrics are each variant's records/s and their ratios.
//
//	go test -run '^$' -bench KeyCountPipeline -benchtime 3x ./stream/kafka/
func BenchmarkKeyCountPipeline(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "in"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cfg := Config{Brokers: c.ListenAddrs()}
	produceKeys(b, cfg, "in", benchRecords, func(i int) string { return "k" + strconv.Itoa(i*7919%1000) })
	adm, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()
	topic := 0
	newOut := func() string {
		topic++
		name := fmt.Sprintf("out-%d", topic)
		if _, err := kadm.NewClient(adm).CreateTopics(context.Background(), 4, 1, nil, name); err != nil {
			b.Fatal(err)
		}
		return name
	}
	for _, keyGroups := range []int{2, 8} {
		b.Run(fmt.Sprintf("keygroups=%d", keyGroups), func(b *testing.B) { benchPipelines(b, cfg, newOut, keyGroups) })
	}
}

// benchPipelines times the four variants; the Eddy jobs run with keyGroups key groups, hence
// as many sink instances (and, exactly-once, transactional producers).
func benchPipelines(b *testing.B, cfg Config, newOut func() string, keyGroups int) {
	variants := []struct {
		name string
		run  func(b *testing.B, out string)
	}{
		{"franz-go-alo", func(b *testing.B, out string) { plainLoop(b, cfg, out, false) }},
		{"eddy-alo", func(b *testing.B, out string) { eddyPipeline(b, cfg, out, false, keyGroups) }},
		{"franz-go-eo", func(b *testing.B, out string) { plainLoop(b, cfg, out, true) }},
		{"eddy-eo", func(b *testing.B, out string) { eddyPipeline(b, cfg, out, true, keyGroups) }},
	}
	// Each iteration runs every variant once, in turn, so that the load of a shared machine
	// falls on all of them alike; the ratios are what to read.
	elapsed := make([]time.Duration, len(variants))
	for b.Loop() {
		for i, v := range variants {
			b.StopTimer()
			out := newOut()
			b.StartTimer()
			start := time.Now()
			v.run(b, out)
			elapsed[i] += time.Since(start)
		}
	}
	rate := make([]float64, len(variants))
	for i, v := range variants {
		rate[i] = float64(benchRecords) * float64(b.N) / elapsed[i].Seconds()
		b.ReportMetric(rate[i], v.name+"-records/s")
	}
	b.ReportMetric(rate[1]/rate[0], "eddy/franz-go-alo")
	b.ReportMetric(rate[3]/rate[2], "eddy/franz-go-eo")
	b.ReportMetric(rate[3]/rate[1], "eddy-eo/eddy-alo")
	b.ReportMetric(0, "ns/op")
}

// checkpointEvery is the checkpoint interval of the Eddy jobs and the transaction length of
// the exactly-once franz-go loop.
const checkpointEvery = 100 * time.Millisecond

// eddyPipeline runs the key-count job over the whole input into out.
func eddyPipeline(b *testing.B, cfg Config, out string, exactly bool, keyGroups int) {
	var (
		sink      stream.Sink[seqOut]
		committed func() int64
	)
	if exactly {
		s, err := ExactlyOnce(cfg, out, seqEncoder(), "bench-"+out)
		if err != nil {
			b.Fatal(err)
		}
		sink, committed = s, func() int64 { return s.Stats().Committed }
	} else {
		s, err := AtLeastOnce(cfg, out, seqEncoder())
		if err != nil {
			b.Fatal(err)
		}
		sink, committed = s, func() int64 { return s.Stats().Committed }
	}
	store, err := persistence.OpenDirCheckpoints(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	g, _ := keyCountGraph(cfg, "in", sink)
	job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(keyGroups), graph.Checkpoints(store, checkpointEvery))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- job.Run(ctx) }()
	for committed() < benchRecords {
		select {
		case err := <-errc:
			cancel()
			b.Fatalf("job ended: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
}

// plainLoop is the same job written directly on franz-go: one client consumes the input
// partitions, counts per key and produces; exactly-once commits a transaction every
// checkpointEvery (no consumer group: like the Eddy job, it would keep its offsets itself).
func plainLoop(b *testing.B, cfg Config, out string, exactly bool) {
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(out),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"in": {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart(), 3: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	if exactly {
		opts = append(opts, kgo.TransactionalID("plain-"+out))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	counts := map[string]int64{}
	read := 0
	txnStart := time.Now()
	if exactly {
		if err := cl.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
	}
	for read < benchRecords {
		fs := cl.PollRecords(ctx, 4096)
		if err := fs.Err(); err != nil {
			b.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			var in keyed
			if err := json.Unmarshal(r.Value, &in); err != nil {
				b.Fatal(err)
			}
			counts[in.Key]++
			v, _ := json.Marshal(seqOut{in.Key, counts[in.Key]})
			cl.Produce(ctx, &kgo.Record{Key: []byte(in.Key), Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		})
		if exactly && (time.Since(txnStart) >= checkpointEvery || read >= benchRecords) {
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				b.Fatal(err)
			}
			txnStart = time.Now()
			if read < benchRecords {
				if err := cl.BeginTransaction(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
