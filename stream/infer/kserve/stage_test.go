package kserve_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/kserve"
	"github.com/eddyflow/eddy/stream/infer/kserve/kservetest"
)

// The inference stage against a real v2 server that misbehaves: whatever the fault, every
// record comes out scored exactly once, or goes to the dead letters exactly once.

const records = 2000

type rec struct {
	ID int64
	X  []float32
}

func source() stream.Source[rec] {
	return stream.Generate(records, func(i int64) rec { return rec{ID: i, X: []float32{float32(i), float32(i % 13)}} })
}

// outcome is what a job made of the records: scored ids (with their outputs checked) and
// dead-lettered ids.
type outcome struct {
	scored, dead []int64
	reasons      []string
}

// runJob scores source() through the client and returns the outcome and the job's error.
func runJob(t *testing.T, c *kserve.Client, policy actor.ErrorPolicy, opts ...infer.Option) (outcome, error) {
	t.Helper()
	g := graph.New("kserve")
	out := stream.NewCollectSink[infer.Scored[rec]]()
	infer.Stage(graph.From(g, source()), c, func(r rec) []float32 { return r.X }, opts...).To(out)
	var mu sync.Mutex
	var o outcome
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := g.Run(ctx, graph.Parallelism(2), graph.BatchSize(256), graph.OnError(policy),
		graph.Logger(slog.New(slog.DiscardHandler)),
		graph.DeadLetters(func(d stream.DeadLetter) {
			mu.Lock()
			defer mu.Unlock()
			r, ok := d.Value.(rec)
			if !ok {
				t.Errorf("dead letter without its record: %+v", d)
				return
			}
			o.dead = append(o.dead, r.ID)
			o.reasons = append(o.reasons, d.Reason)
		}))
	for _, s := range out.Values() {
		if !slices.Equal(s.Output, affine(s.In.X)) {
			t.Fatalf("id %d: output %v, want %v", s.In.ID, s.Output, affine(s.In.X))
		}
		o.scored = append(o.scored, s.In.ID)
	}
	return o, err
}

// checkOnce asserts that no id is both scored and dead, or either twice; with all, that
// every id is one of the two.
func checkOnce(t *testing.T, o outcome, all bool) {
	t.Helper()
	seen := map[int64]string{}
	for _, id := range o.scored {
		if seen[id] != "" {
			t.Fatalf("id %d scored twice", id)
		}
		seen[id] = "scored"
	}
	for _, id := range o.dead {
		if seen[id] != "" {
			t.Fatalf("id %d dead-lettered after being %s", id, seen[id])
		}
		seen[id] = "dead"
	}
	if all && len(seen) != records {
		t.Fatalf("%d scored + %d dead = %d ids; want all %d", len(o.scored), len(o.dead), len(seen), records)
	}
}

func dial(t *testing.T, srv *kservetest.Server) *kserve.Client {
	t.Helper()
	c, err := kserve.Dial(context.Background(), srv.URL, "m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStageSlowServerTimeoutsAndRetries(t *testing.T) {
	srv := kservetest.NewServer("m", 2, infer.RowFunc(affine))
	defer srv.Close()
	// Every 3rd request is held back far longer than the stage's timeout.
	srv.SetFault(func(n int64) kservetest.Fault {
		if n%3 == 0 {
			return kservetest.Fault{Delay: 10 * time.Second}
		}
		return kservetest.Fault{}
	})
	o, err := runJob(t, dial(t, srv), actor.Skip, infer.MaxBatch(32), infer.Concurrency(4), infer.Timeout(100*time.Millisecond), infer.Retries(5), infer.Backoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, o, true)
	if len(o.scored) != records {
		t.Errorf("%d scored, want all %d (every slow request retried): %q", len(o.scored), records, o.reasons)
	}
	// The server may answer a request whose client already gave up (a request slow for
	// no fault of its own, on a loaded machine): it scores at least every record once.
	if srv.Rows.Load() < records {
		t.Errorf("the server answered %d rows; want at least %d", srv.Rows.Load(), records)
	}
	if srv.Requests.Load() <= (records+31)/32 {
		t.Errorf("%d requests: no retries happened", srv.Requests.Load())
	}
}

func TestStage503sBackOff(t *testing.T) {
	srv := kservetest.NewServer("m", 2, infer.RowFunc(affine))
	defer srv.Close()
	// The first 4 requests get 503: the one request in flight is retried 4 times, at
	// least 40, 80, 160, 320 ms / 2 apart (jitter takes up to half).
	var mu sync.Mutex
	var at []time.Time
	srv.SetFault(func(n int64) kservetest.Fault {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if n <= 4 {
			return kservetest.Fault{Status: 503}
		}
		return kservetest.Fault{}
	})
	o, err := runJob(t, dial(t, srv), actor.Skip, infer.MaxBatch(512), infer.Concurrency(1), infer.Retries(4), infer.Backoff(40*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkOnce(t, o, true)
	if len(o.scored) != records {
		t.Fatalf("%d scored, want %d: %q", len(o.scored), records, o.reasons)
	}
	mu.Lock()
	defer mu.Unlock()
	// The retries of one request: with two instances of the stage, requests 1-4 may belong
	// to either; the gaps between consecutive requests sum to at least the backoff of the
	// retries of one of them.
	var waited time.Duration
	for i := 1; i < 5 && i < len(at); i++ {
		waited += at[i].Sub(at[i-1])
	}
	if waited < 60*time.Millisecond {
		t.Errorf("5 requests within %v of each other after 503s: no backoff", waited)
	}
}

func TestStageServerDies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy actor.ErrorPolicy
	}{
		{"dead letters", actor.Skip},
		{"job fails", actor.FailJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := kservetest.NewServer("m", 2, infer.RowFunc(affine))
			var once sync.Once
			srv.SetFault(func(n int64) kservetest.Fault {
				if n == 10 {
					// The server goes down after its 10th request: no answer, no server.
					once.Do(func() {
						srv.CloseClientConnections()
						go srv.Close()
					})
					return kservetest.Fault{Status: 503}
				}
				return kservetest.Fault{}
			})
			defer srv.Close()
			o, err := runJob(t, dial(t, srv), tc.policy, infer.MaxBatch(32), infer.Concurrency(2), infer.Retries(2), infer.Backoff(time.Millisecond, 5*time.Millisecond), infer.Timeout(time.Second))
			switch tc.policy {
			case actor.Skip:
				if err != nil {
					t.Fatalf("job failed under the skip policy: %v", err)
				}
				checkOnce(t, o, true)
				if len(o.dead) == 0 || len(o.scored) == 0 {
					t.Fatalf("%d scored, %d dead; want both", len(o.scored), len(o.dead))
				}
				for _, r := range o.reasons {
					if !strings.Contains(r, "after 2 retries") {
						t.Fatalf("dead letter reason %q", r)
					}
				}
			case actor.FailJob:
				if err == nil {
					t.Fatal("the job did not fail when the server died")
				}
				checkOnce(t, o, false)
				if len(o.scored) >= records {
					t.Errorf("all %d scored though the server died", len(o.scored))
				}
			}
			t.Logf("%d scored, %d dead letters, job error: %v", len(o.scored), len(o.dead), err)
		})
	}
}
