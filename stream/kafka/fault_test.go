package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// failProduce answers one produce request of the sink with a non-retriable error for every
// partition in it.
func failProduce(c *kfake.Cluster, injected *atomic.Bool) {
	c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ProduceRequest)
		if req.TransactionID == nil {
			c.KeepControl()
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.BaseOffset = rp.Partition, kerr.InvalidRecord.Code, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		injected.Store(true)
		return resp, nil, true
	})
}

// failEndTxn answers one EndTxn commit with an error: the broker did not commit.
func failEndTxn(c *kfake.Cluster, injected *atomic.Bool) {
	c.ControlKey(int16(kmsg.EndTxn), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.EndTxnRequest)
		if !req.Commit {
			c.KeepControl()
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.InvalidTxnState.Code
		injected.Store(true)
		return resp, nil, true
	})
}

// A broker fault in the middle of a run (a produce refused, a transaction's commit refused)
// breaks the sink with a clear error; the job is stopped and started again from its
// checkpoints, as a supervisor would, and the output a read_committed reader sees is
// exact: nothing lost, nothing twice.
func TestBrokerFaultThenRestart(t *testing.T) {
	for _, tt := range []struct {
		name   string
		inject func(*kfake.Cluster, *atomic.Bool)
	}{
		{"produce error", failProduce},
		{"EndTxn error", failEndTxn},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 150_000 // enough that the job is still running when the fault comes, on a fast machine
			c, cfg := newCluster(t, 4, "in", "out")
			want := produceKeys(t, cfg, "in", n, func(i int) string { return fmt.Sprintf("k%d", i%53) })
			store, err := persistence.OpenDirCheckpoints(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var injected atomic.Bool
			failures := 0
			for run := 0; ; run++ {
				if run > 5 {
					t.Fatal("not done after 5 restarts")
				}
				sink, err := ExactlyOnce(cfg, "out", seqEncoder(), "fault")
				if err != nil {
					t.Fatal(err)
				}
				g, src := keyCountGraph(cfg, "in", sink)
				job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(8), graph.Checkpoints(store, 30*time.Millisecond),
					// What a broken writer refuses becomes dead letters; the checkpoints after
					// the break never complete, so the restart replays it.
					graph.DeadLetters(func(stream.DeadLetter) {}))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				go func() { errc <- job.Run(ctx) }()
				broken, done := false, false
				for !broken && !done {
					time.Sleep(10 * time.Millisecond) // polling a running job's counters
					if run == 0 && !injected.Load() && sink.Stats().Transactions >= 3 {
						tt.inject(c, &injected)
						injected.Store(false)
						tt.inject = func(*kfake.Cluster, *atomic.Bool) {}
					}
					if err := sink.Err(); err != nil {
						t.Logf("run %d: the sink failed as it should: %v", run, err)
						broken = true
						failures++
					}
					ss := src.Stats()
					var next int64
					for _, p := range ss.Partitions {
						next += p.Next
					}
					done = next == n && sink.Stats().Committed == ss.Records
				}
				cancel()
				if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
					t.Fatalf("run %d: %v", run, err)
				}
				if done {
					break
				}
			}
			if failures == 0 {
				t.Fatal("the fault never broke the sink: the test did not test it")
			}
			checkSeqs(t, readCommitted(t, cfg, "out", n, 300*time.Millisecond), want)
		})
	}
}
