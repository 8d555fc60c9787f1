package chain_test

import (
	"context"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/eddyflow/eddy/internal/devchain"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/chain"
)

// testChain is a dev chain with two deployed tokens and a driver that makes blocks full of
// transfers, mints and burns, and re-orgs.
type testChain struct {
	*devchain.Chain
	t      testing.TB
	rng    *rand.Rand
	tokens []common.Address
	// first is the first block after the tokens were deployed and funded.
	first uint64
	// withLogs holds the canonical blocks that block made (they have logs; empty blocks
	// of jumpTime do not).
	withLogs map[uint64]bool
}

func startChain(t testing.TB, seed uint64) *testChain {
	t.Helper()
	c, err := devchain.Start(4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	tc := &testChain{Chain: c, t: t, rng: rand.New(rand.NewPCG(seed, 99)), withLogs: map[uint64]bool{}}
	ctx := context.Background()
	for _, sym := range []string{"AAA", "BBB"} {
		tok, err := c.DeployToken(ctx, 0, "Token "+sym, sym, big.NewInt(1000))
		if err != nil {
			t.Fatal(err)
		}
		tc.tokens = append(tc.tokens, tok)
	}
	// Every account gets a balance far above what the transfers move.
	huge := new(big.Int).Lsh(big.NewInt(1), 200)
	for _, tok := range tc.tokens {
		for i := range c.Accounts {
			if err := c.Mint(ctx, 0, tok, c.Accounts[i], huge); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Commit()
	tc.first = c.Head().Number.Uint64() + 1
	return tc
}

// block seals a block with one to four random token operations; one at least is a mint, so
// every block has a log.
func (c *testChain) block() {
	c.t.Helper()
	ctx := context.Background()
	tok := c.tokens[c.rng.IntN(len(c.tokens))]
	if err := c.Mint(ctx, c.rng.IntN(len(c.Accounts)), tok, c.Accounts[c.rng.IntN(len(c.Accounts))], c.value()); err != nil {
		c.t.Fatal(err)
	}
	for range c.rng.IntN(4) {
		from := c.rng.IntN(len(c.Accounts))
		tok := c.tokens[c.rng.IntN(len(c.tokens))]
		var err error
		switch c.rng.IntN(5) {
		case 0:
			err = c.Burn(ctx, from, tok, c.value())
		default:
			to := c.Accounts[c.rng.IntN(len(c.Accounts))]
			if c.rng.IntN(3) == 0 {
				to = common.BigToAddress(big.NewInt(int64(1000 + c.rng.IntN(1000))))
			}
			err = c.Transfer(ctx, from, tok, to, c.value())
		}
		if err != nil {
			c.t.Fatal(err)
		}
	}
	c.Commit()
	c.withLogs[c.head()] = true
}

// lastWithLogs is the newest canonical block at or below n that has logs.
func (c *testChain) lastWithLogs(n uint64) uint64 {
	for ; n > c.first; n-- {
		if c.withLogs[n] {
			return n
		}
	}
	return n
}

// value is a random amount, often above 2^64.
func (c *testChain) value() *big.Int {
	v := new(big.Int).SetUint64(c.rng.Uint64())
	return v.Lsh(v, uint(c.rng.IntN(64)))
}

// reorg replaces the top depth blocks with depth+1 new ones.
func (c *testChain) reorg(depth int) {
	c.t.Helper()
	if err := c.Fork(depth); err != nil {
		c.t.Fatal(err)
	}
	for n := range c.withLogs {
		if n > c.head() {
			delete(c.withLogs, n)
		}
	}
	for range depth + 1 {
		c.block()
	}
}

// jumpTime moves the chain's clock on by d (an empty block), so that transfers spread over
// several minutes.
func (c *testChain) jumpTime(d time.Duration) {
	c.t.Helper()
	for range 10 {
		if err := c.AdjustTime(d); err == nil {
			return
		}
		c.Commit() // transactions the last block did not take
	}
	c.t.Fatal("the chain keeps pending transactions; cannot adjust its time")
}

// head is the chain's head number.
func (c *testChain) head() uint64 { return c.Head().Number.Uint64() }

// canonical reads the Transfer logs of the tokens in blocks from..to back over JSON-RPC
// (HTTP), with their blocks' times.
func canonical(t testing.TB, url string, tokens []common.Address, from, to uint64) ([]chain.Transfer, map[uint64]uint64) {
	t.Helper()
	ctx := context.Background()
	cl, err := ethclient.DialContext(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	logs, err := cl.FilterLogs(ctx, ethereum.FilterQuery{FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(to),
		Addresses: tokens, Topics: [][]common.Hash{{chain.TransferTopic}}})
	if err != nil {
		t.Fatal(err)
	}
	times := map[uint64]uint64{}
	dec := chain.DefaultDecoder()
	var out []chain.Transfer
	for _, l := range logs {
		if _, ok := times[l.BlockNumber]; !ok {
			h, err := cl.HeaderByNumber(ctx, new(big.Int).SetUint64(l.BlockNumber))
			if err != nil {
				t.Fatal(err)
			}
			if h.Hash() != l.BlockHash {
				t.Fatalf("block %d changed while reading the canonical chain", l.BlockNumber)
			}
			times[l.BlockNumber] = h.Time
		}
		name, args, err := dec.Decode(l)
		if err != nil {
			t.Fatal(err)
		}
		tr, ok := chain.AsTransfer(chain.Event{Log: l, BlockTime: times[l.BlockNumber], Name: name, Args: args})
		if !ok {
			t.Fatalf("log %v is not an ERC-20 transfer", l)
		}
		out = append(out, tr)
	}
	return out, times
}

// applyRetractions checks the output rule — every retract follows an insert of the same
// (blockHash, logIndex) with the same fields, no identity is inserted twice while live — and
// returns what is left, in output order.
func applyRetractions(t testing.TB, recs []stream.Record[chain.Transfer]) (live []chain.Transfer, retracts int) {
	t.Helper()
	type id struct {
		h common.Hash
		i uint
	}
	cur := map[id]chain.Transfer{}
	var order []id
	for n, r := range recs {
		k := id{r.Value.BlockHash, r.Value.LogIndex}
		prev, ok := cur[k]
		switch r.Kind {
		case stream.Insert:
			if ok {
				t.Fatalf("record %d: insert of %v while it is live", n, k)
			}
			cur[k] = r.Value
			order = append(order, k)
		case stream.Retract:
			if !ok {
				t.Fatalf("record %d: retract of %v with no live insert", n, k)
			}
			if !sameTransfer(prev, r.Value) {
				t.Fatalf("record %d: retract %+v does not repeat its insert %+v", n, r.Value, prev)
			}
			delete(cur, k)
			retracts++
		}
	}
	for _, k := range order {
		if v, ok := cur[k]; ok {
			live = append(live, v)
			delete(cur, k)
		}
	}
	return live, retracts
}

func sameTransfer(a, b chain.Transfer) bool {
	return a.Token == b.Token && a.From == b.From && a.To == b.To && a.Value.Cmp(b.Value) == 0 && a.Block == b.Block &&
		a.BlockHash == b.BlockHash && a.TxHash == b.TxHash && a.LogIndex == b.LogIndex && a.Time == b.Time
}

// checkSame fails unless got and want hold the same transfers (in any order).
func checkSame(t testing.TB, got, want []chain.Transfer) {
	t.Helper()
	key := func(x chain.Transfer) string { return x.BlockHash.Hex() + "/" + big.NewInt(int64(x.LogIndex)).String() }
	byKey := map[string]chain.Transfer{}
	for _, w := range want {
		byKey[key(w)] = w
	}
	if len(got) != len(want) {
		t.Errorf("%d transfers after retractions, the canonical chain has %d", len(got), len(want))
	}
	for _, g := range got {
		w, ok := byKey[key(g)]
		if !ok {
			t.Errorf("transfer %s (block %d) is not on the canonical chain", key(g), g.Block)
			continue
		}
		if !sameTransfer(g, w) {
			t.Errorf("transfer %s: got %+v, canonical %+v", key(g), g, w)
		}
	}
}

// volumes sums transfers per token and minute (Unix s, a multiple of 60).
type volKey struct {
	Token  common.Address
	Minute int64
}

func volumesOf(ts []chain.Transfer) map[volKey]chain.Volume {
	out := map[volKey]chain.Volume{}
	agg := chain.VolumeOf()
	for _, t := range ts {
		k := volKey{t.Token, int64(t.Time) / 60 * 60}
		v, ok := out[k]
		if !ok {
			v = agg.Zero()
		}
		out[k] = agg.Add(v, t)
	}
	return out
}

// waitFor polls cond every 5ms until it holds or d passes. The tests drive a real node and a
// real job, so this waits for their progress, not for event time.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			if debugState != nil {
				t.Log(debugState())
			}
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testLogger logs to the test's log when CHAIN_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CHAIN_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var debugState func() string
