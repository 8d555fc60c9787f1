package kafka

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/stream"
)

// collect is a stream.Output that keeps what a split hands it.
type collect[T any] struct {
	recs        []stream.Record[T]
	deadLetters []stream.DeadLetter
	watermarks  []int64
}

func (c *collect[T]) Emit(r stream.Record[T])        { c.recs = append(c.recs, r) }
func (c *collect[T]) DeadLetter(d stream.DeadLetter) { c.deadLetters = append(c.deadLetters, d) }
func (c *collect[T]) Watermark(w int64)              { c.watermarks = append(c.watermarks, w) }
func (c *collect[T]) values() (vs []T) {
	for _, r := range c.recs {
		vs = append(vs, r.Value)
	}
	return vs
}

// readSplit reads sp until it has handed n records and dead letters, or fails after 10s.
func readSplit[T any](t *testing.T, sp stream.Split[T], n int) *collect[T] {
	t.Helper()
	out := &collect[T]{}
	deadline := time.Now().Add(10 * time.Second)
	for len(out.recs)+len(out.deadLetters) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d records and %d dead letters, want %d in all", len(out.recs), len(out.deadLetters), n)
		}
		if _, err := sp.Read(context.Background(), 100, out); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	return out
}

var text = func(m *Message) (string, error) { return string(m.Value), nil }

// Where a first run starts: the earliest record, after the last, at a time, or at a group's
// committed offsets (written here by another source's courtesy commits).
func TestStartFrom(t *testing.T) {
	_, cfg := newCluster(t, 1, "t")
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			r := &kgo.Record{Value: fmt.Appendf(nil, "v%d", i), Timestamp: time.UnixMilli(int64(1000 * i))}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 10)

	// A source that reads 4 records and is checkpointed commits offset 4 to group g.
	committer := Source(cfg, []string{"t"}, text, CommitOffsetsTo("g"))
	splits, err := committer.Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	readOne := splits[0]
	for n := 0; n < 4; {
		out := &collect[string]{}
		if _, err := readOne.Read(context.Background(), 4-n, out); err != nil {
			t.Fatal(err)
		}
		n += len(out.recs)
	}
	if _, err := readOne.(interface{ Offset() ([]byte, error) }).Offset(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "courtesy commit", func() bool {
		st := Source(cfg, []string{"t"}, text, StartFrom(Committed("g")))
		sp, _ := st.Splits(1)
		defer sp[0].Close()
		out := &collect[string]{}
		_, _ = sp[0].Read(context.Background(), 1, out)
		p := st.Stats().Partitions
		return len(p) == 1 && p[0].Next >= 4
	})
	readOne.Close()

	for _, tt := range []struct {
		name  string
		start StartAt
		want  string // the first value read once v10..v12 are produced
	}{
		{"earliest", Earliest(), "v0"},
		{"latest", Latest(), "v10"},
		{"at time", AtTime(time.UnixMilli(7000)), "v7"},
		{"committed", Committed("g"), "v4"},
		{"committed, unknown group", Committed("nobody"), "v0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := Source(cfg, []string{"t"}, text, StartFrom(tt.start))
			splits, err := src.Splits(1)
			if err != nil {
				t.Fatal(err)
			}
			defer splits[0].Close()
			// The first Read resolves where to start, before the new records exist.
			first := &collect[string]{}
			if _, err := splits[0].Read(context.Background(), 1, first); err != nil {
				t.Fatal(err)
			}
			if tt.name == "latest" {
				if len(first.recs) != 0 {
					t.Fatalf("latest read %v before anything new", first.values())
				}
				produce(10, 13)
			}
			got := first.values()
			if len(got) == 0 {
				got = readSplit(t, splits[0], 1).values()
			}
			if got[0] != tt.want {
				t.Errorf("first value %q, want %q", got[0], tt.want)
			}
			st := src.Stats()
			if len(st.Partitions) != 1 || st.Partitions[0].Records < 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// The decoder sees the whole record: key, headers, timestamp, position. A value it refuses
// is a dead letter with topic/partition:offset, and the split goes on.
func TestDecoderSeesTheRecordAndRefusesToDeadLetters(t *testing.T) {
	_, cfg := newCluster(t, 1, "t")
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := time.UnixMilli(1_700_000_000_123)
	for _, r := range []*kgo.Record{
		{Key: []byte("k1"), Value: []byte("ok"), Timestamp: at, Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}},
		{Key: []byte("k2"), Value: []byte("bad"), Timestamp: at},
		{Key: []byte("k3"), Value: []byte("ok"), Timestamp: at.Add(time.Second)},
	} {
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	type seen struct {
		Key, Header string
		Offset      int64
	}
	src := Source(cfg, []string{"t"}, func(m *Message) (seen, error) {
		if string(m.Value) == "bad" {
			return seen{}, fmt.Errorf("value %q refused", m.Value)
		}
		h := ""
		if len(m.Headers) > 0 {
			h = m.Headers[0].Key + "=" + string(m.Headers[0].Value)
		}
		return seen{Key: string(m.Key), Header: h, Offset: m.Offset}, nil
	})
	splits, err := src.Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	defer splits[0].Close()
	out := readSplit(t, splits[0], 3)
	want := []stream.Record[seen]{
		{Value: seen{"k1", "h=x", 0}, Time: at.UnixMilli()},
		{Value: seen{"k3", "", 2}, Time: at.Add(time.Second).UnixMilli()},
	}
	if len(out.recs) != 2 || out.recs[0] != want[0] || out.recs[1] != want[1] {
		t.Errorf("records %+v, want %+v", out.recs, want)
	}
	if len(out.deadLetters) != 1 {
		t.Fatalf("dead letters %+v, want one", out.deadLetters)
	}
	d := out.deadLetters[0]
	if d.Position != 1 || d.Value != "bad" || !strings.HasPrefix(d.Reason, "t/0:1: ") {
		t.Errorf("dead letter %+v, want position 1, value bad, reason starting t/0:1", d)
	}
	if st := src.Stats(); st.DeadLetters != 1 || st.Records != 2 || st.Lag != 0 {
		t.Errorf("stats %+v, want 2 records, 1 dead letter, no lag", st)
	}
}

// Topics are created on start when asked.
func TestCreateTopicsOnStart(t *testing.T) {
	_, cfg := newCluster(t, 1, "existing")
	sink, err := ExactlyOnce(cfg, "made-by-sink", seqEncoder(), "create", CreateSinkTopic(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Recover(0, func(int) bool { return true }); err != nil {
		t.Fatal(err)
	}
	sink.Close()
	src := Source(cfg, []string{"made-by-source"}, text, CreateSourceTopics(2))
	splits, err := src.Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := splits[0].Read(context.Background(), 1, &collect[string]{}); err != nil {
		t.Fatal(err)
	}
	splits[0].Close()
	if got := len(src.Stats().Partitions); got != 2 {
		t.Errorf("the source reads %d partitions of the topic it created, want 2", got)
	}
	if err := CreateTopics(context.Background(), cfg, 1, "made-by-sink", "another"); err != nil {
		t.Errorf("CreateTopics with one topic existing: %v", err)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(context.Background(), "made-by-sink", "another")
	if err != nil {
		t.Fatal(err)
	}
	if p := len(md.Topics["made-by-sink"].Partitions); p != 3 {
		t.Errorf("made-by-sink has %d partitions, want 3", p)
	}
	if p := len(md.Topics["another"].Partitions); p != 1 {
		t.Errorf("another has %d partitions, want 1", p)
	}
}

// A restored split reads from its checkpoint's offsets; a partition the checkpoint does not
// have (it appeared while the job was down) is new and read from its first record, whatever
// StartFrom says.
func TestRestoredSplitReadsNewPartitionsFromTheStart(t *testing.T) {
	_, cfg := newCluster(t, 2, "t")
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := range int32(2) {
		for i := range 3 {
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	src := Source(cfg, []string{"t"}, text, StartFrom(Latest()))
	splits, err := src.Splits(1)
	if err != nil {
		t.Fatal(err)
	}
	defer splits[0].Close()
	off := encodeOffsets(splitOffsets{splits: 1, index: 0, next: map[topicPartition]int64{{"t", 0}: 2}})
	if err := splits[0].(interface{ Seek([]byte) error }).Seek(off); err != nil {
		t.Fatal(err)
	}
	got := readSplit(t, splits[0], 4).values()
	slices.Sort(got)
	if want := []string{"p0-2", "p1-0", "p1-1", "p1-2"}; !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}
}
