package graph_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// TestMain fails the package if any test leaves a goroutine behind: every job must stop its
// actors, timers and sources before Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet keeps Proto.Actor's and the runtime's logs out of the test output.
var quiet = graph.Logger(slog.New(slog.DiscardHandler))

// runTimeout bounds every job of these tests; a job that hangs fails its test instead of
// the whole package.
const runTimeout = 2 * time.Minute

// build builds g with the quiet logger and opts, failing the test on an error.
func build(t *testing.T, g *graph.Graph, opts ...graph.JobOption) *graph.Job {
	t.Helper()
	job, err := g.Build(append([]graph.JobOption{quiet}, opts...)...)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return job
}

// run builds g and runs it to the end under a timeout, failing the test on an error.
func run(t *testing.T, g *graph.Graph, opts ...graph.JobOption) *graph.Job {
	t.Helper()
	job := build(t, g, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := job.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return job
}

// letters collects dead letters; the runtime calls add from many actors at once.
type letters struct {
	// mu guards got.
	mu  sync.Mutex
	got []stream.DeadLetter
}

func (l *letters) add(d stream.DeadLetter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, d)
}

func (l *letters) all() []stream.DeadLetter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stream.DeadLetter(nil), l.got...)
}

// option returns the job option that sends dead letters to l.
func (l *letters) option() graph.JobOption { return graph.DeadLetters(l.add) }

// statsOf returns the counters of the vertex named name.
func statsOf(t *testing.T, job *graph.Job, name string) actor.StageStats {
	t.Helper()
	for _, s := range job.Stats() {
		if s.Stage == name {
			return s
		}
	}
	t.Fatalf("no vertex %q in stats %+v", name, job.Stats())
	return actor.StageStats{}
}

// lastPerKey returns the last value per key in arrival order, and fails the test if a key's
// values ever go down (per-key order must hold through the exchange).
func lastPerKey[K comparable, V int64 | int](t *testing.T, recs []stream.Record[stream.KV[K, V]]) map[K]V {
	t.Helper()
	last := map[K]V{}
	for _, r := range recs {
		if prev, ok := last[r.Value.Key]; ok && r.Value.Value < prev {
			t.Fatalf("key %v: value %v after %v; per-key order is lost", r.Value.Key, r.Value.Value, prev)
		}
		last[r.Value.Key] = r.Value.Value
	}
	return last
}

// ints returns 0..n-1.
func ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
