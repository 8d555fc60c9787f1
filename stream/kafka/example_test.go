package kafka_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/kafka"
)

// Words from one topic, upper-cased into another, exactly once: the job's source splits read
// the partitions, and the sink's transaction commits with the checkpoint.
func ExampleExactlyOnce() {
	broker, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "words", "loud"))
	defer broker.Close()
	cfg := kafka.Config{Brokers: broker.ListenAddrs()}

	producer, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic("words"))
	for _, w := range []string{"stream", "actor", "graph"} {
		producer.ProduceSync(context.Background(), &kgo.Record{Key: []byte(w), Value: []byte(w)})
	}
	producer.Close()

	text, _ := stream.CodecFor[string]() // raw bytes as a string
	g := graph.New("loud")
	words := graph.From(g, kafka.Source(cfg, []string{"words"}, kafka.Values(text)))
	sink, err := kafka.ExactlyOnce(cfg, "loud", kafka.KeyedValues(text, nil), "example-loud")
	if err != nil {
		fmt.Println(err)
		return
	}
	graph.Map(words, func(w string) string { return fmt.Sprintf("%s!", w) }).To(sink)
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	store, _ := persistence.OpenDirCheckpoints(dir)
	job, err := g.Build(graph.Checkpoints(store, 20*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The source is unbounded: stop the job once its output is committed.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	for sink.Stats().Committed < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	reader, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics("loud"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer reader.Close()
	var got []string
	for len(got) < 3 {
		reader.PollFetches(context.Background()).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	slices.Sort(got)
	fmt.Println(got)
	// Output:
	// [actor! graph! stream!]
}

// Reading a topic: its partitions are the job's source splits, the decoder sees the whole
// record, and Stats reports each partition's position and lag.
func ExampleSource() {
	broker, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "clicks"))
	defer broker.Close()
	cfg := kafka.Config{Brokers: broker.ListenAddrs()}
	producer, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic("clicks"))
	for _, user := range []string{"ann", "bob", "ann"} {
		producer.ProduceSync(context.Background(), &kgo.Record{Key: []byte(user), Value: []byte("/home")})
	}
	producer.Close()

	type click struct{ User, Page string }
	src := kafka.Source(cfg, []string{"clicks"}, func(m *kafka.Message) (click, error) {
		return click{User: string(m.Key), Page: string(m.Value)}, nil
	})
	g := graph.New("clicks")
	out := stream.NewCollectSink[click]()
	graph.From(g, src).To(out)
	job, _ := g.Build(graph.Parallelism(2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	// Until the three clicks are read and both splits have taken their partition.
	for len(out.Values()) < 3 || len(src.Stats().Partitions) < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	got := out.Values()
	slices.SortFunc(got, func(a, b click) int { return strings.Compare(a.User, b.User) })
	fmt.Println(got)
	st := src.Stats()
	fmt.Println("records", st.Records, "partitions", len(st.Partitions), "lag", st.Lag)
	// Output:
	// [{ann /home} {ann /home} {bob /home}]
	// records 3 partitions 2 lag 0
}
