package actor_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/jobruntime"
	"github.com/eddyflow/eddy/stream"
)

const (
	fanSplits = 2
	// fanOut records per source record: several batches of fanBatch, so that a source's
	// work waits for credit in the middle of a read.
	fanOut   = 50
	fanBatch = 16
)

// fanOutJob is Generate(n) over two splits → FlatMap (fanOut copies) → KeyBy → Count, with
// small batches and one credit: the sources' work is suspended over and over.
func fanOutJob(t *testing.T, n int64) *graph.Job {
	t.Helper()
	g := graph.New("fan")
	src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i }), graph.Name("src"))
	copies := graph.FlatMap(src, func(i int64, emit func(int64)) {
		for range fanOut {
			emit(i)
		}
	})
	counts := graph.Count(graph.KeyBy(copies, func(i int64) int64 { return i % 5 }), graph.Name("count"), graph.Emit(stream.EmitAtEnd), recordByRecord)
	counts.To(stream.NewCollectSink[stream.KV[int64, int64]]())
	job, err := g.Build(graph.Parallelism(fanSplits), graph.MaxKeyGroups(4), graph.BatchSize(fanBatch), graph.Credits(1),
		graph.Clock(stream.NewManualClock(time.Unix(0, 0))), graph.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// countedIn returns how many records the count stage's key groups hold in checkpoint cp, and
// how many the sources had handed out (each read record whole, all its copies emitted)
// before their barrier, times fanOut.
func countedIn(t *testing.T, n int64, cp actor.Checkpoint) (counted, handedOut int64) {
	t.Helper()
	for j := range int64(fanSplits) {
		raw, ok := cp.States[fmt.Sprintf("fan/src/%d", j)]
		if !ok {
			t.Fatalf("checkpoint %d: no state for source split %d", cp.ID, j)
		}
		var s struct{ Emitted int64 }
		if err := json.Unmarshal(raw[1:], &s); err != nil {
			t.Fatalf("checkpoint %d: source %d: %v", cp.ID, j, err)
		}
		handedOut += s.Emitted * fanOut
	}
	for id, raw := range cp.States {
		if !strings.HasPrefix(id, "fan/count/") {
			continue
		}
		// An aggregate's snapshot: a version byte, then uvarint-length-prefixed key and
		// accumulator bytes per key.
		for b := raw[1:]; len(b) > 0; {
			for field := range 2 {
				size, w := binary.Uvarint(b)
				if w <= 0 || size > uint64(len(b)-w) {
					t.Fatalf("checkpoint %d: %s: bad snapshot", cp.ID, id)
				}
				if field == 1 {
					acc, err := stream.DecodeState[int64](b[w : w+int(size)])
					if err != nil {
						t.Fatalf("checkpoint %d: %s: %v", cp.ID, id, err)
					}
					counted += acc
				}
				b = b[w+int(size):]
			}
		}
	}
	return counted, handedOut
}

// A checkpoint triggered while a source's work waits for credit in the middle of its
// FlatMap's output waits until that output has gone: the source's position in the
// checkpoint counts only records whose every copy went out before the barrier, and the
// key groups downstream hold exactly those copies.
func TestCheckpointWaitsForPendingEmission(t *testing.T) {
	const n = 3_000
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			d, err := actor.NewSyncDriver(jobruntime.Of(fanOutJob(t, n)))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			d.Begin()
			rng := rand.New(rand.NewPCG(seed, 3))
			var id int64
			for {
				moved, err := d.Step(1 + rng.IntN(40))
				if err != nil {
					t.Fatal(err)
				}
				if moved == 0 {
					break
				}
				if rng.IntN(4) == 0 {
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
			checked := 0
			for i := int64(1); i <= id; i++ {
				cp, err := d.Checkpoint(i)
				if err != nil {
					t.Errorf("checkpoint %d: %v", i, err)
					continue
				}
				counted, handedOut := countedIn(t, n, cp)
				if counted != handedOut {
					t.Errorf("checkpoint %d: the key groups hold %d records; the sources had handed out %d before their barrier", i, counted, handedOut)
				}
				if handedOut > 0 && handedOut < n*fanOut {
					checked++ // a cut in the middle of the run
				}
			}
			if checked < 3 {
				t.Errorf("only %d checkpoints cut the run in its middle; the test checked little", checked)
			}
		})
	}
}

// Closing a job whose source's work waits for credit in the middle of a call of its
// FlatMap's function unwinds that call: its deferred code runs, and no coroutine is left
// behind (TestMain fails the package on a leaked goroutine).
func TestCloseUnwindsSuspendedWork(t *testing.T) {
	unwound, returned := 0, 0
	g := graph.New("stop")
	src := graph.From(g, stream.Generate(4, func(i int64) int64 { return i }), graph.Name("src"))
	copies := graph.FlatMap(src, func(i int64, emit func(int64)) {
		done := false
		defer func() {
			if done {
				returned++
			} else {
				unwound++
			}
		}()
		for range 1_000 {
			emit(i)
		}
		done = true
	})
	graph.Count(graph.KeyBy(copies, func(i int64) int64 { return i }), recordByRecord).To(stream.NewCollectSink[stream.KV[int64, int64]]())
	job, err := g.Build(graph.Parallelism(1), graph.MaxKeyGroups(2), graph.BatchSize(fanBatch), graph.Credits(1),
		graph.Clock(stream.NewManualClock(time.Unix(0, 0))), graph.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := actor.NewSyncDriver(jobruntime.Of(job))
	if err != nil {
		t.Fatal(err)
	}
	d.Begin()
	// The start messages, the source's first pull, and a few batches and credits: far from
	// the 1,000 copies of the first record.
	if _, err := d.Step(8); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if unwound != 1 || returned != 0 {
		t.Errorf("the FlatMap's calls: %d unwound, %d returned; want the one in progress unwound", unwound, returned)
	}
}
