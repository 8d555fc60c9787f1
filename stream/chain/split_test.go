package chain_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/chain"
)

// output collects what a split hands on.
type output struct {
	recs  []stream.Record[chain.Event]
	dead  []stream.DeadLetter
	marks []int64
}

func (o *output) Emit(r stream.Record[chain.Event]) { o.recs = append(o.recs, r) }
func (o *output) DeadLetter(d stream.DeadLetter)    { o.dead = append(o.dead, d) }
func (o *output) Watermark(w int64)                 { o.marks = append(o.marks, w) }

func openSplit(t *testing.T, cfg chain.Config) stream.Split[chain.Event] {
	t.Helper()
	splits, err := chain.Source(cfg).Splits(4)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 1 {
		t.Fatalf("%d splits, want 1", len(splits))
	}
	t.Cleanup(func() { _ = splits[0].Close() })
	return splits[0]
}

// readUntil reads the split until it has handed on an insert of block n (or ends).
func readUntil(t *testing.T, s stream.Split[chain.Event], out *output, n uint64) error {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, err := s.Read(context.Background(), 7, out) // small reads: records wait in the queue
		if err != nil {
			return err
		}
		for _, r := range out.recs {
			if r.Kind == stream.Insert && r.Value.Log.BlockNumber >= n {
				return nil
			}
		}
	}
	t.Fatalf("block %d never came", n)
	return nil
}

// A restart from a checkpoint taken before a re-org that happened while the job was down:
// the new split checks the checkpointed block against the canonical chain and retracts the
// orphaned blocks' records, newest first, before the new canonical ones.
func TestSeekRetractsWhatChangedWhileDown(t *testing.T) {
	c := startChain(t, 21)
	for range 10 {
		c.block()
	}
	cfg := chain.Config{Endpoints: []string{c.HTTP}, Addresses: c.tokens, FromBlock: c.first, PollInterval: 10 * time.Millisecond}
	s1 := openSplit(t, cfg)
	out1 := &output{}
	if err := readUntil(t, s1, out1, c.head()); err != nil {
		t.Fatal(err)
	}
	off, err := s1.(interface{ Offset() ([]byte, error) }).Offset()
	if err != nil {
		t.Fatal(err)
	}
	_ = s1.Close()
	top := c.head()
	orphaned := map[common.Hash]bool{}
	for n := top - 3; n <= top; n++ {
		orphaned[out1lastHash(t, out1, n)] = true
	}
	c.reorg(4) // while "down"

	s2 := openSplit(t, cfg)
	if err := s2.(interface{ Seek([]byte) error }).Seek(off); err != nil {
		t.Fatal(err)
	}
	out2 := &output{}
	if err := readUntil(t, s2, out2, c.head()); err != nil {
		t.Fatal(err)
	}
	// The records the checkpoint held but had not handed on come first (inserts), then the
	// retractions, block numbers never increasing, each of an orphaned block.
	retracts, last := 0, uint64(1<<63)
	for _, r := range out2.recs {
		if r.Kind != stream.Retract {
			if retracts > 0 {
				break
			}
			continue
		}
		if !orphaned[r.Value.Log.BlockHash] || r.Value.Log.BlockNumber > last {
			t.Fatalf("retract of block %d (%s) out of order or not orphaned", r.Value.Log.BlockNumber, r.Value.Log.BlockHash.Hex())
		}
		last = r.Value.Log.BlockNumber
		retracts++
	}
	if retracts == 0 {
		t.Fatal("no retraction after the re-org while down")
	}
	var all []stream.Record[chain.Event]
	all = append(all, out1.recs...)
	all = append(all, out2.recs...)
	var ts []stream.Record[chain.Transfer]
	for _, r := range all {
		tr, ok := chain.AsTransfer(r.Value)
		if !ok {
			t.Fatalf("not a transfer: %+v", r.Value)
		}
		ts = append(ts, stream.Record[chain.Transfer]{Value: tr, Kind: r.Kind})
	}
	live, _ := applyRetractions(t, ts)
	want, _ := canonical(t, c.HTTP, c.tokens, c.first, c.head())
	checkSame(t, live, want)
}

func out1lastHash(t *testing.T, o *output, n uint64) common.Hash {
	for _, r := range o.recs {
		if r.Value.Log.BlockNumber == n {
			return r.Value.Log.BlockHash
		}
	}
	t.Fatalf("no record of block %d", n)
	return common.Hash{}
}

// A re-org deeper than MaxReorgDepth fails the source with ErrReorgTooDeep.
func TestReorgDeeperThanBufferFails(t *testing.T) {
	c := startChain(t, 23)
	for range 12 {
		c.block()
	}
	s := openSplit(t, chain.Config{Endpoints: []string{c.HTTP}, FromBlock: c.first, MaxReorgDepth: 4, PollInterval: 10 * time.Millisecond})
	out := &output{}
	if err := readUntil(t, s, out, c.head()); err != nil {
		t.Fatal(err)
	}
	if len(out.marks) == 0 {
		t.Error("no watermark after more blocks than MaxReorgDepth")
	}
	c.reorg(6)
	var err error
	for range 100 {
		if _, err = s.Read(context.Background(), 100, out); err != nil {
			break
		}
	}
	if !errors.Is(err, chain.ErrReorgTooDeep) {
		t.Fatalf("Read after a 6-deep re-org with MaxReorgDepth 4: %v, want ErrReorgTooDeep", err)
	}
}

// A bounded source ends with io.EOF once UntilBlock is out and a head C blocks above it is
// seen; logs the decoder does not know go to the dead letters, with their block.
func TestUntilBlockAndDeadLetters(t *testing.T) {
	c := startChain(t, 29)
	for range 6 {
		c.block()
	}
	// Only ERC-721 Transfer: the ERC-20 logs (two indexed topics) do not decode.
	dec, err := chain.NewDecoder(chain.ERC721ABI)
	if err != nil {
		t.Fatal(err)
	}
	until := c.first + 3
	s := openSplit(t, chain.Config{Endpoints: []string{c.WS}, FromBlock: c.first, UntilBlock: until, HasUntil: true, Confirmations: 2, Decoder: dec})
	out := &output{}
	for {
		_, err := s.Read(context.Background(), 100, out)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out.recs) != 0 {
		t.Errorf("%d records decoded by an ABI that matches none", len(out.recs))
	}
	want, _ := canonical(t, c.HTTP, c.tokens, c.first, until)
	if len(out.dead) != len(want) {
		t.Errorf("%d dead letters, want one per log of blocks %d..%d: %d", len(out.dead), c.first, until, len(want))
	}
	for _, d := range out.dead {
		if d.Position < int64(c.first) || d.Position > int64(until) {
			t.Errorf("dead letter of block %d, outside %d..%d", d.Position, c.first, until)
		}
	}
}
