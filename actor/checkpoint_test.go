package actor_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/jobruntime"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

const (
	ckptKeys   = 11
	ckptSplits = 2
	// ckptKeyGroups is the counting job's number of key groups.
	ckptKeyGroups = 8
)

func ckptKey(i int64) int64 { return (i * 7919) % ckptKeys }

// countingJob is Generate(n) over two splits → KeyBy → Count: its checkpoints can be checked
// exactly, because split j hands out a known range of i in order.
func countingJob(t *testing.T, n int64, opts ...graph.JobOption) *graph.Job {
	t.Helper()
	return countingJobFrom(t, stream.Generate(n, func(i int64) int64 { return i }), opts...)
}

// recordByRecord sends every record across the exchange to the count: these tests step and
// cut jobs message by message, and partial counts (local aggregation, tested with
// checkpoints in graph) would finish a job in a few hundred messages.
var recordByRecord = graph.LocalAggregation(false)

// countingJobFrom is countingJob over src, which hands out 0..n-1 in ckptSplits ranges.
func countingJobFrom(t *testing.T, source stream.Source[int64], opts ...graph.JobOption) *graph.Job {
	t.Helper()
	g := graph.New("ckpt")
	src := graph.From(g, source, graph.Name("src"))
	counts := graph.Count(graph.KeyBy(src, ckptKey), graph.Name("count"), graph.Emit(stream.EmitAtEnd), recordByRecord)
	counts.To(stream.NewCollectSink[stream.KV[int64, int64]]())
	job, err := g.Build(append([]graph.JobOption{graph.Parallelism(ckptSplits), graph.MaxKeyGroups(ckptKeyGroups), graph.BatchSize(16),
		graph.Credits(2), graph.Logger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// checkConsistent checks the heart of asynchronous barrier snapshotting: the state of the
// key groups in checkpoint cp holds exactly the records the sources had handed out before
// their barrier, no more, no less. A key group that had finished (sent its results at the
// end of input) has no state in the cut: its keys are checked in no checkpoint but the
// ones before it finished. It returns how many keys it checked.
func checkConsistent(t *testing.T, n int64, cp actor.Checkpoint) int {
	t.Helper()
	keyCodec, _ := stream.CodecFor[int64]()
	hash := operator.KeyHasher(keyCodec)
	finished := func(k int64) bool {
		return cp.Finished[fmt.Sprintf("ckpt/count/%d", operator.KeyGroup(hash(k), ckptKeyGroups))]
	}
	want := map[int64]int64{}
	for j := range int64(ckptSplits) {
		start, end := n*j/ckptSplits, n*(j+1)/ckptSplits
		var s struct{ Emitted int64 }
		if raw, ok := cp.States[fmt.Sprintf("ckpt/src/%d", j)]; ok {
			if err := json.Unmarshal(raw[1:], &s); err != nil {
				t.Fatalf("checkpoint %d: source %d: %v", cp.ID, j, err)
			}
		} else {
			s.Emitted = end - start // finished: it had handed out all of its range
		}
		for i := start; i < start+s.Emitted; i++ {
			want[ckptKey(i)]++
		}
	}
	got := map[int64]int64{}
	for id, raw := range cp.States {
		if !strings.HasPrefix(id, "ckpt/count/") {
			continue
		}
		// An aggregate's snapshot: version 2, then uvarint-length-prefixed key and
		// accumulator bytes per key.
		if raw[0] != 2 {
			t.Fatalf("checkpoint %d: %s: snapshot version %d", cp.ID, id, raw[0])
		}
		field := func(b []byte) ([]byte, []byte) {
			n, w := binary.Uvarint(b)
			if w <= 0 || n > uint64(len(b)-w) {
				t.Fatalf("checkpoint %d: %s: bad snapshot", cp.ID, id)
			}
			return b[w : w+int(n)], b[w+int(n):]
		}
		for b := raw[1:]; len(b) > 0; {
			var kb, ab []byte
			kb, b = field(b)
			ab, b = field(b)
			k, err := keyCodec.Decode(kb)
			if err != nil {
				t.Fatalf("checkpoint %d: %s: %v", cp.ID, id, err)
			}
			acc, err := stream.DecodeState[int64](ab)
			if err != nil {
				t.Fatalf("checkpoint %d: %s: %v", cp.ID, id, err)
			}
			got[k] += acc
		}
	}
	checked := 0
	for k := range int64(ckptKeys) {
		if finished(k) {
			continue
		}
		checked++
		if got[k] != want[k] {
			t.Errorf("checkpoint %d: key %d holds %d records; the sources had handed out %d before their barrier", cp.ID, k, got[k], want[k])
		}
	}
	return checked
}

// Checkpoints taken at random moments of a deterministic run are consistent cuts.
func TestCheckpointBarriersAligned(t *testing.T) {
	const n = 20_000
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			job := countingJob(t, n, graph.Clock(stream.NewManualClock(time.Unix(0, 0))))
			d, err := actor.NewSyncDriver(jobruntime.Of(job))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			d.Begin()
			rng := rand.New(rand.NewPCG(seed, 1))
			var id int64
			for {
				moved, err := d.Step(1 + rng.IntN(400))
				if err != nil {
					t.Fatal(err)
				}
				if moved == 0 {
					break
				}
				if rng.IntN(3) == 0 {
					if id > 0 {
						if _, err := d.Checkpoint(id); err != nil {
							continue // the last one is still on its way
						}
					}
					id++
					d.TriggerCheckpoint(id)
				}
			}
			if !d.Done() {
				t.Fatal("the job did not finish")
			}
			completed, checked := 0, 0
			for i := int64(1); i <= id; i++ {
				cp, err := d.Checkpoint(i)
				if err != nil {
					t.Errorf("checkpoint %d: %v", i, err)
					continue
				}
				checked += checkConsistent(t, n, cp)
				completed++
			}
			if completed < 3 || checked == 0 {
				t.Errorf("%d checkpoints completed, %d keys checked; the test checked little", completed, checked)
			}
		})
	}
}

func (c *checkpointsKept) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

// gatedRange is a source of 0..n-1 in ckptSplits ranges whose splits hand out nothing past
// the middle of their range until open says so: a gate that lets a test decide when a job
// may go on, with no sleep in a user function. Its splits rewind, so it takes part in
// checkpoints.
type gatedRange struct {
	n    int64
	open func() bool
}

func (g *gatedRange) Splits(n int) ([]stream.Split[int64], error) {
	if n != ckptSplits {
		return nil, fmt.Errorf("gatedRange: %d splits, want %d", n, ckptSplits)
	}
	var out []stream.Split[int64]
	for j := range int64(n) {
		start, end := g.n*j/int64(n), g.n*(j+1)/int64(n)
		out = append(out, &gatedSplit{next: start, mid: (start + end) / 2, end: end, open: g.open})
	}
	return out, nil
}

type gatedSplit struct {
	next, mid, end int64
	open           func() bool
	opened         bool
}

func (s *gatedSplit) Read(ctx context.Context, max int, out stream.Output[int64]) (int, error) {
	if s.next >= s.end {
		return 0, io.EOF
	}
	if s.next >= s.mid && !s.opened {
		if s.opened = s.open(); !s.opened {
			select { // no data yet: wait briefly, as a split may
			case <-ctx.Done():
			case <-time.After(time.Millisecond):
			}
			return 0, nil
		}
	}
	stop := s.end
	if !s.opened {
		stop = s.mid
	}
	k := 0
	for ; k < max && s.next < stop; k++ {
		out.Emit(stream.Record[int64]{Value: s.next})
		s.next++
	}
	return k, nil
}

func (s *gatedSplit) Close() error { return nil }

func (s *gatedSplit) Offset() ([]byte, error) { return binary.AppendVarint(nil, s.next), nil }

func (s *gatedSplit) Seek(off []byte) error {
	v, w := binary.Varint(off)
	if w <= 0 || w != len(off) || v < 0 || v > s.end {
		return fmt.Errorf("gatedSplit: bad offset %x", off)
	}
	s.next = v
	return nil
}

// checkpointsKept is a CheckpointSink that keeps what it is given.
type checkpointsKept struct {
	mu  sync.Mutex
	all []actor.Checkpoint
}

func (c *checkpointsKept) Save(_ context.Context, cp actor.Checkpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, cp)
	return nil
}

// On Proto.Actor, with a checkpoint every millisecond: every saved checkpoint is a
// consistent cut, and the counters say how many there were.
func TestCheckpointsOnProtoActor(t *testing.T) {
	const n = 500_000
	kept := &checkpointsKept{}
	// The sources stop halfway until three checkpoints are saved (without blocking their
	// actors, which must inject the barriers), so that checkpoints are taken mid-run however
	// fast the machine is.
	src := &gatedRange{n: n, open: func() bool { return kept.count() >= 3 }}
	job := countingJobFrom(t, src, func(c *actor.Config) {
		c.Checkpoints = kept
		c.CheckpointInterval = time.Millisecond
	})
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(kept.all) < 3 {
		t.Fatalf("%d checkpoints saved; the source waited for 3", len(kept.all))
	}
	checked := 0
	for _, cp := range kept.all {
		checked += checkConsistent(t, n, cp)
	}
	if checked == 0 {
		t.Error("no checkpoint held the state of a running key group: nothing was checked")
	}
	st := job.Checkpoints()
	if st.Completed != int64(len(kept.all)) || st.Failed != 0 {
		t.Errorf("stats %+v; %d checkpoints saved", st, len(kept.all))
	}
	t.Logf("%d checkpoints, last took %v", len(kept.all), st.Duration)
}

// A job restored from a checkpoint taken mid-run ends with the same counts as a run that was
// never interrupted: the state comes from the checkpoint, the sources rewind to its offsets,
// and no record is counted twice or lost.
func TestRestoreFromCheckpoint(t *testing.T) {
	const n = 20_000
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			clock := graph.Clock(stream.NewManualClock(time.Unix(0, 0)))
			first, err := actor.NewSyncDriver(jobruntime.Of(countingJob(t, n, clock)))
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			first.Begin()
			rng := rand.New(rand.NewPCG(seed, 2))
			if _, err := first.Step(50 + rng.IntN(3000)); err != nil {
				t.Fatal(err)
			}
			cp := takeCheckpoint(t, first, 1)
			// The first run dies here. The second starts from the checkpoint.
			out := stream.NewCollectSink[stream.KV[int64, int64]]()
			g := graph.New("ckpt")
			src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i }), graph.Name("src"))
			graph.Count(graph.KeyBy(src, ckptKey), graph.Name("count"), graph.Emit(stream.EmitAtEnd), recordByRecord).To(out)
			job, err := g.Build(graph.Parallelism(ckptSplits), graph.MaxKeyGroups(ckptKeyGroups), graph.BatchSize(16), clock,
				graph.Logger(slog.New(slog.DiscardHandler)), func(c *actor.Config) { c.Restore = &cp })
			if err != nil {
				t.Fatal(err)
			}
			second, err := actor.NewSyncDriver(jobruntime.Of(job))
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			if err := second.Start(); err != nil {
				t.Fatal(err)
			}
			want := map[int64]int64{}
			for i := range int64(n) {
				want[ckptKey(i)]++
			}
			got := map[int64]int64{}
			for _, kv := range out.Values() {
				got[kv.Key] += kv.Value
			}
			for k, c := range want {
				if got[k] != c {
					t.Errorf("key %d: %d after recovery, want %d", k, got[k], c)
				}
			}
		})
	}
}

type nopSink struct{}

func (nopSink) Save(context.Context, actor.Checkpoint) error { return nil }

// Windows survive a crash: a windowed count into a two-phase sink, checkpointed mid-run,
// "crashed" after more work, restored and run to the end, commits every window's count
// exactly once.
func TestWindowsRestoreExactlyOnce(t *testing.T) {
	const n = 30_000
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			out := t.TempDir()
			build := func(restore *actor.Checkpoint) (*graph.Job, stream.TwoPhaseSink[string]) {
				sink, err := stream.TwoPhaseJSONLSink[string](out)
				if err != nil {
					t.Fatal(err)
				}
				g := graph.New("win")
				src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i }), graph.Name("src"))
				stamped := graph.Timestamps(src, func(i int64) int64 { return i }, stream.BoundedOutOfOrder[int64](0))
				counts := graph.Window(graph.KeyBy(stamped, ckptKey), stream.Tumbling(time.Second), agg.Count[int64](), graph.Name("w"))
				graph.Map(counts, func(r stream.WindowResult[int64, int64]) string {
					return fmt.Sprintf("%d@%d=%d", r.Key, r.Start, r.Value)
				}).To(sink)
				job, err := g.Build(graph.Parallelism(ckptSplits), graph.MaxKeyGroups(ckptKeyGroups), graph.BatchSize(16),
					graph.Clock(stream.NewManualClock(time.Unix(0, 0))), graph.Logger(slog.New(slog.DiscardHandler)),
					func(c *actor.Config) { c.Checkpoints, c.Restore = nopSink{}, restore })
				if err != nil {
					t.Fatal(err)
				}
				return job, sink
			}
			job, sink := build(nil)
			if err := sink.Recover(0, func(int) bool { return true }); err != nil {
				t.Fatal(err)
			}
			first, err := actor.NewSyncDriver(jobruntime.Of(job))
			if err != nil {
				t.Fatal(err)
			}
			first.Begin()
			rng := rand.New(rand.NewPCG(seed, 3))
			if _, err := first.Step(100 + rng.IntN(3000)); err != nil {
				t.Fatal(err)
			}
			cp := takeCheckpoint(t, first, 1)
			if err := first.CompleteCheckpoint(1); err != nil {
				t.Fatal(err)
			}
			if _, err := first.Step(rng.IntN(2000)); err != nil { // more work, then the crash
				t.Fatal(err)
			}
			first.Close()

			job2, sink2 := build(&cp)
			if err := sink2.Recover(1, func(int) bool { return true }); err != nil {
				t.Fatal(err)
			}
			second, err := actor.NewSyncDriver(jobruntime.Of(job2))
			if err != nil {
				t.Fatal(err)
			}
			if err := second.Start(); err != nil {
				t.Fatal(err)
			}
			if err := sink2.Commit(actor.FinalCheckpoint); err != nil {
				t.Fatal(err)
			}
			second.Close()

			want := map[string]int{}
			counts := map[[2]int64]int64{}
			for i := range int64(n) {
				counts[[2]int64{ckptKey(i), i / 1000 * 1000}]++
			}
			for kw, c := range counts {
				want[fmt.Sprintf("%d@%d=%d", kw[0], kw[1], c)] = 1
			}
			got := map[string]int{}
			files, _ := filepath.Glob(filepath.Join(out, "*.jsonl"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					var s string
					if err := json.Unmarshal([]byte(line), &s); err != nil {
						t.Fatalf("%s: %q: %v", f, line, err)
					}
					got[s]++
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d distinct results committed, want %d", len(got), len(want))
			}
			for r := range want {
				if got[r] != 1 {
					t.Errorf("%s committed %d times", r, got[r])
				}
			}
		})
	}
}

// takeCheckpoint triggers checkpoint id on d and steps the job until it is complete.
func takeCheckpoint(t *testing.T, d *actor.SyncDriver, id int64) actor.Checkpoint {
	t.Helper()
	d.TriggerCheckpoint(id)
	for {
		cp, err := d.Checkpoint(id)
		if err == nil {
			return cp
		}
		if moved, err := d.Step(1); err != nil || moved == 0 {
			t.Fatalf("checkpoint %d never completed: %v", id, err)
		}
	}
}

// A run whose fence says another run holds the job saves nothing more and fails: two runs
// never both commit.
func TestCheckpointFenced(t *testing.T) {
	sys := pa.NewActorSystem(pa.WithLoggerFactory(func(*pa.ActorSystem) *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }))
	defer sys.Shutdown()
	kept := &checkpointsKept{}
	var asked atomic.Int64
	const allowed = 3
	fenced := errors.New("epoch 7 holds the job")
	job := countingJob(t, 50_000_000, func(c *actor.Config) {
		c.Checkpoints = kept
		c.CheckpointInterval = time.Millisecond
		c.Cluster = &actor.ClusterRun{System: sys, Epoch: 1, Fence: func() error {
			if asked.Add(1) > allowed {
				return fenced
			}
			return nil
		}}
	})
	err := job.Run(context.Background())
	if !errors.Is(err, fenced) || !strings.Contains(err.Error(), "fenced off") {
		t.Fatalf("Run() = %v, want the fence's error", err)
	}
	if len(kept.all) != allowed {
		t.Errorf("%d checkpoints saved, want the %d the fence allowed", len(kept.all), allowed)
	}
}
