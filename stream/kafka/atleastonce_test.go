package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// The at-least-once sink on a clean run: every output record is acknowledged by the time
// its checkpoint completes, and a run without failures writes each once. (A replay after a
// crash may write records again; that is the difference from ExactlyOnce.)
func TestAtLeastOnceEndToEnd(t *testing.T) {
	_, cfg := newCluster(t, 4, "in", "out")
	want := produceKeys(t, cfg, "in", 10_000, func(i int) string { return fmt.Sprintf("k%d", i%11) })
	sink, err := AtLeastOnce(cfg, "out", seqEncoder())
	if err != nil {
		t.Fatal(err)
	}
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g, src := keyCountGraph(cfg, "in", sink)
	job, err := g.Build(graph.Parallelism(2), graph.Checkpoints(store, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runUntil(t, job, func() bool { return src.Stats().Records == 10_000 && sink.Stats().Committed == 10_000 })
	checkSeqs(t, readCommitted(t, cfg, "out", 10_000, 300*time.Millisecond), want)
}

func TestSinkConfigErrors(t *testing.T) {
	cfg := Config{Brokers: []string{"localhost:1"}}
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"no brokers", func() error { _, err := AtLeastOnce(Config{}, "t", seqEncoder()); return err }()},
		{"no topic", func() error { _, err := AtLeastOnce(cfg, "", seqEncoder()); return err }()},
		{"no encoder", func() error { _, err := AtLeastOnce[seqOut](cfg, "t", nil); return err }()},
		{"no prefix", func() error { _, err := ExactlyOnce(cfg, "t", seqEncoder(), ""); return err }()},
		{"bad timeout", func() error { _, err := ExactlyOnce(cfg, "t", seqEncoder(), "p", TransactionTimeout(-1)); return err }()},
	} {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	// The exactly-once sink refuses writes before Recover, and WriteBatch without an instance.
	s, err := ExactlyOnce(cfg, "t", seqEncoder(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatchFor(0, nil); err == nil {
		t.Error("write before Recover: no error")
	}
	if err := s.WriteBatch(nil); err == nil {
		t.Error("WriteBatch: no error")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func TestSourceConfigErrors(t *testing.T) {
	cfg := Config{Brokers: []string{"localhost:1"}}
	dec := Values(stringCodec{})
	for name, src := range map[string]*KafkaSource[string]{
		"no brokers":    Source(Config{}, []string{"a"}, dec),
		"no topics":     Source(cfg, nil, dec),
		"nil decoder":   Source[string](cfg, []string{"a"}, nil),
		"empty topic":   Source(cfg, []string{""}, dec),
		"negative idle": Source(cfg, []string{"a"}, dec, IdleAfter(-time.Second)),
		"no group":      Source(cfg, []string{"a"}, dec, StartFrom(Committed(""))),
		"wrong wm type": Source(cfg, []string{"a"}, dec, Watermarks(stream.Monotonous[int]())),
		"wrong ts type": Source(cfg, []string{"a"}, dec, EventTime(func(int, *Message) int64 { return 0 })),
	} {
		if _, err := src.Splits(1); err == nil {
			t.Errorf("%s: Splits returned no error", name)
		}
	}
}

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }
func (stringCodec) Decode(b []byte) (string, error)             { return string(b), nil }
