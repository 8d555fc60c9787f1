package infer_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet keeps the runtime's logs out of the test output.
var quiet = graph.Logger(slog.New(slog.DiscardHandler))

// run runs g to its end under a timeout, failing the test on an error.
func run(t testing.TB, g *graph.Graph, opts ...graph.JobOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Run(ctx, append([]graph.JobOption{quiet}, opts...)...); err != nil {
		t.Fatalf("run %s: %v", g.Name(), err)
	}
}

// letters collects dead letters.
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

func (l *letters) option() graph.JobOption { return graph.DeadLetters(l.add) }
