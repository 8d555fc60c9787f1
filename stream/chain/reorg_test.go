package chain_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/chain"
)

// transferJob is the graph the tests run: the chain source, its ERC-20 transfers to a sink
// that keeps every record with its kind, and per-token one-minute event-time windows of
// their volume, with the retractions applied.
type transferJob struct {
	mu      sync.Mutex
	recs    []stream.Record[chain.Transfer]
	maxSeen atomic.Uint64
	volumes *stream.CollectSink[stream.WindowResult[string, chain.Volume]]
	done    chan error
}

func (j *transferJob) records() []stream.Record[chain.Transfer] {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]stream.Record[chain.Transfer](nil), j.recs...)
}

// caughtUp says whether the job has emitted block n; it fails the test if the job ended.
func (j *transferJob) caughtUp(t testing.TB, n uint64) bool {
	select {
	case err := <-j.done:
		t.Fatalf("the job ended early: %v", err)
	default:
	}
	return j.maxSeen.Load() >= n
}

func runTransferJob(t testing.TB, cfg chain.Config) *transferJob {
	t.Helper()
	j := &transferJob{volumes: stream.NewCollectSink[stream.WindowResult[string, chain.Volume]](), done: make(chan error, 1)}
	g := graph.New("transfers")
	events := graph.From(g, chain.Source(cfg))
	transfers := graph.FlatMap(events, func(e chain.Event, emit func(chain.Transfer)) {
		if tr, ok := chain.AsTransfer(e); ok {
			emit(tr)
		}
	})
	transfers.To(stream.FuncSink(func(recs []stream.Record[chain.Transfer]) error {
		j.mu.Lock()
		defer j.mu.Unlock()
		for _, r := range recs {
			j.recs = append(j.recs, r)
			if r.Kind == stream.Insert && r.Value.Block > j.maxSeen.Load() {
				j.maxSeen.Store(r.Value.Block)
			}
		}
		return nil
	}))
	perToken := graph.KeyBy(transfers, func(tr chain.Transfer) string { return tr.Token.Hex() }, graph.WithCodec(stream.JSON[chain.Transfer]()))
	graph.Window(perToken, stream.Tumbling(time.Minute), chain.VolumeOf()).To(j.volumes)
	debugState = func() string {
		recs := j.records()
		return fmt.Sprintf("%d records, max block %d, last %+v", len(recs), j.maxSeen.Load(), recs[len(recs)-1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	go func() {
		j.done <- g.Run(ctx, graph.Parallelism(2), graph.Logger(slog.New(slog.DiscardHandler)))
	}()
	return j
}

// The acceptance test: re-orgs of depth 1, 2, 5 and 10 at random moments while the job
// follows the chain, over WebSocket and over polling, with and without confirmations. At the
// end the output minus its retractions is the canonical chain's Transfer logs (read back
// over RPC), the windows' per-minute volumes equal the canonical sums, and with 12
// confirmations no retraction appears.
func TestReorgsRetractOrphanedBlocks(t *testing.T) {
	for _, tc := range []struct {
		name          string
		websocket     bool
		confirmations uint64
	}{
		{"websocket", true, 0},
		{"polling", false, 0},
		{"websocket/confirmations=12", true, 12},
		{"polling/confirmations=12", false, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startChain(t, uint64(len(tc.name)))
			const blocks = 70 // forks happen below until-12, so that the last one is settled
			from, until := c.first, c.first+blocks
			endpoint := c.HTTP
			if tc.websocket {
				endpoint = c.WS
			}
			j := runTransferJob(t, chain.Config{
				Endpoints: []string{endpoint}, Addresses: c.tokens, Topics: [][]common.Hash{{chain.TransferTopic}},
				FromBlock: from, UntilBlock: until, HasUntil: true, Confirmations: tc.confirmations,
				PollInterval: 10 * time.Millisecond, BatchSize: 8, Logger: testLogger(t),
			})

			// Forks of each depth, in a random order, each when the job has caught up (so
			// that it has emitted what the fork orphans), between random runs of blocks;
			// and as many forks at moments the job may be anywhere.
			for range 12 {
				c.block()
			}
			depths := []int{1, 2, 5, 10}
			c.rng.Shuffle(len(depths), func(a, b int) { depths[a], depths[b] = depths[b], depths[a] })
			for _, d := range depths {
				for range 1 + c.rng.IntN(4) {
					c.block()
					if c.rng.IntN(4) == 0 {
						c.jumpTime(time.Duration(10+c.rng.IntN(40)) * time.Second)
					}
				}
				caughtUp := c.lastWithLogs(max(c.head(), tc.confirmations) - tc.confirmations)
				waitFor(t, 20*time.Second, fmt.Sprintf("the job to catch up to block %d (head %d)", caughtUp, c.head()), func() bool { return j.caughtUp(t, caughtUp) })
				c.reorg(d)
				c.block()
				c.reorg(1 + c.rng.IntN(10)) // at a random moment
			}
			if c.head() > until-12 {
				t.Fatalf("the forks went up to block %d, past %d: make blocks larger", c.head(), until-12)
			}
			for c.head() < until+tc.confirmations {
				c.block()
			}
			select {
			case err := <-j.done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("the job did not end after the last block")
			}

			want, _ := canonical(t, c.HTTP, c.tokens, from, until)
			live, retracts := applyRetractions(t, j.records())
			checkSame(t, live, want)
			if tc.confirmations == 0 && retracts < 1+2+5+10 {
				t.Errorf("%d retractions: the forks of depth 1, 2, 5, 10 orphaned at least 18 emitted blocks with a log each", retracts)
			}
			if tc.confirmations > 0 && retracts > 0 {
				t.Errorf("%d retractions with %d confirmations and forks of at most 10 blocks", retracts, tc.confirmations)
			}

			wantVol := volumesOf(want)
			got := map[volKey]chain.Volume{}
			for _, r := range j.volumes.Records() {
				if r.Kind != stream.Insert {
					t.Fatalf("window result of kind %v", r.Kind)
				}
				k := volKey{common.HexToAddress(r.Value.Key), r.Value.Start / 1000}
				if _, dup := got[k]; dup {
					t.Fatalf("window %v fired twice", k)
				}
				if r.Value.Value.Count == 0 {
					continue // a minute whose transfers were all retracted
				}
				got[k] = r.Value.Value
			}
			if len(got) != len(wantVol) {
				t.Errorf("%d (token, minute) volumes, the canonical chain has %d", len(got), len(wantVol))
			}
			for k, w := range wantVol {
				if g, ok := got[k]; !ok || g.Sum.Cmp(w.Sum) != 0 || g.Count != w.Count {
					t.Errorf("volume of %s at %d: got %v, canonical %v", k.Token.Hex(), k.Minute, g, w)
				}
			}
			t.Logf("blocks %d..%d: %d transfers, %d retractions, %d minutes", from, until, len(want), retracts, len(wantVol))
		})
	}
}
