package chain

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/eddyflow/eddy/stream"
)

// Source returns a source of the decoded logs of cfg's chain, in block order, with a
// retraction for every log of a block a re-org orphaned. It has one split, whatever the
// parallelism, and it is replayable: checkpoints hold the next block, the blocks it may
// still have to retract (with their logs) and what it read but has not handed on.
// A bad Config is an error of Splits (so of the job's Build).
func Source(cfg Config) stream.Source[Event] { return source{cfg} }

type source struct{ cfg Config }

func (s source) Splits(int) ([]stream.Split[Event], error) {
	cfg, err := s.cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return []stream.Split[Event]{newSplit(cfg)}, nil
}

// queued is a record read but not yet handed on, or a watermark (Mark).
type queued struct {
	Kind   stream.Kind `json:"k,omitempty"`
	Log    *types.Log  `json:"l,omitempty"`
	Time   uint64      `json:"t,omitempty"` // the block's time, s
	IsMark bool        `json:"w,omitempty"`
	Mark   int64       `json:"m,omitempty"`
}

// split follows the chain. Its state, all in the checkpoint: ring (the last emitted blocks
// with their logs, oldest first, at most MaxReorgDepth), next (the next block number to
// read) and queue.
type split struct {
	cfg Config
	eps *endpoints

	ring  []block
	next  uint64
	queue []queued

	// head is the newest head seen (number and hash); topChecked says the top of ring was
	// checked against the canonical chain since head last changed.
	head             common.Hash
	headNum          uint64
	haveHead         bool
	topChecked       bool
	sub              *rpc.ClientSubscription
	heads            chan *types.Header
	subRetryAt       time.Time
	lastPoll         time.Time
	pollNow          bool
	stats            stats
	lastProgressLog  time.Time
	lastProgressNext uint64
}

// stats counts what a split did, for its log lines.
type stats struct {
	Blocks, Logs, Retracts, Reorgs, DeepestReorg, Resubscribes uint64
}

func newSplit(cfg Config) *split {
	return &split{cfg: cfg, eps: newEndpoints(cfg), next: cfg.FromBlock, pollNow: true}
}

// Read hands on queued records; with none queued it follows the head, fetches the blocks up
// to head − Confirmations, checks each block's parent against the last emitted one and
// queues inserts, or retractions on a re-org.
func (s *split) Read(ctx context.Context, max int, out stream.Output[Event]) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	if n := s.drain(max, out); n > 0 || len(s.queue) > 0 {
		return n, nil
	}
	if s.finished() {
		return 0, io.EOF
	}
	if err := s.follow(ctx); err != nil {
		return 0, err
	}
	if err := s.advance(ctx); err != nil {
		return 0, err
	}
	n := s.drain(max, out)
	if n == 0 && len(s.queue) == 0 {
		if s.finished() {
			return 0, io.EOF
		}
		s.wait(ctx)
	}
	return n, nil
}

// finished says the bounded source is done: UntilBlock emitted, a head of
// UntilBlock+Confirmations seen and the top checked against it.
func (s *split) finished() bool {
	return s.cfg.HasUntil && s.next > s.cfg.UntilBlock && s.haveHead && s.topChecked &&
		s.headNum >= s.cfg.UntilBlock+s.cfg.Confirmations && len(s.queue) == 0
}

// drain hands on at most max queued records (watermarks do not count).
func (s *split) drain(max int, out stream.Output[Event]) int {
	n, i := 0, 0
	for ; i < len(s.queue) && n < max; i++ {
		q := s.queue[i]
		if q.IsMark {
			out.Watermark(q.Mark)
			continue
		}
		name, args, err := s.cfg.Decoder.Decode(*q.Log)
		if err != nil {
			// Only the insert goes to the dead letters: its retraction has nothing to take back.
			if q.Kind == stream.Insert {
				out.DeadLetter(stream.DeadLetter{Reason: fmt.Sprintf("block %d log %d (tx %s): %v", q.Log.BlockNumber, q.Log.Index, q.Log.TxHash.Hex(), err),
					Value: *q.Log, Position: int64(q.Log.BlockNumber), Time: int64(q.Time) * 1000})
			}
			continue
		}
		out.Emit(stream.Record[Event]{Value: Event{Log: *q.Log, BlockTime: q.Time, Name: name, Args: args}, Time: int64(q.Time) * 1000, Kind: q.Kind})
		n++
	}
	// Move the rest to the front so the queue does not keep a growing backing array.
	rest := copy(s.queue, s.queue[i:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return n
}

// follow updates the head: from the subscription when there is one, else (and right after
// subscribing, to catch up what passed meanwhile) by polling.
func (s *split) follow(ctx context.Context) error {
	if s.sub != nil {
	drain:
		for {
			select {
			case h := <-s.heads:
				s.setHead(h.Number.Uint64(), h.Hash())
			case err := <-s.sub.Err():
				s.cfg.Logger.Warn("chain: new-heads subscription dropped; polling", "err", err, "poll", s.cfg.PollInterval)
				s.sub = nil
				s.subRetryAt = time.Now().Add(s.cfg.ResubscribeInterval)
				s.pollNow = true
				break drain
			default:
				break drain
			}
		}
	}
	if s.sub == nil && time.Now().After(s.subRetryAt) {
		s.subscribe(ctx)
	}
	// With a subscription up, a slow poll still runs: a subscription that stalls without an
	// error must not stall the source.
	every := s.cfg.PollInterval
	if s.sub != nil {
		every *= 10
	}
	if s.pollNow || time.Since(s.lastPoll) >= every {
		h, err := s.eps.header(ctx, 0, true)
		if err != nil {
			return err
		}
		s.lastPoll, s.pollNow = time.Now(), false
		if h != nil {
			s.setHead(h.Number.Uint64(), h.Hash())
		}
	}
	return nil
}

// subscribe subscribes to new heads on the first WebSocket endpoint that accepts.
func (s *split) subscribe(ctx context.Context) {
	s.subRetryAt = time.Now().Add(s.cfg.ResubscribeInterval)
	for i, url := range s.cfg.Endpoints {
		if !isWS(url) {
			continue
		}
		c, err := s.eps.client(ctx, i)
		if err == nil {
			heads := make(chan *types.Header, 1024)
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var sub *rpc.ClientSubscription
			sub, err = c.EthSubscribe(sctx, heads, "newHeads")
			cancel()
			if err == nil {
				if s.stats.Resubscribes > 0 || s.haveHead {
					s.cfg.Logger.Info("chain: subscribed to new heads again", "endpoint", url)
				}
				s.stats.Resubscribes++
				s.sub, s.heads, s.pollNow = sub, heads, true
				return
			}
			s.eps.failed(i)
		}
		s.cfg.Logger.Warn("chain: cannot subscribe to new heads; polling", "endpoint", url, "err", err)
	}
}

func (s *split) setHead(num uint64, hash common.Hash) {
	if !s.haveHead || hash != s.head {
		s.topChecked = false
	}
	s.head, s.headNum, s.haveHead = hash, num, true
}

// target is the newest block that may be emitted: head − Confirmations, capped at
// UntilBlock. ok is false when there is none yet.
func (s *split) target() (uint64, bool) {
	if !s.haveHead || s.headNum < s.cfg.Confirmations {
		return 0, false
	}
	t := s.headNum - s.cfg.Confirmations
	if s.cfg.HasUntil {
		t = min(t, s.cfg.UntilBlock)
	}
	return t, true
}

// advance fetches and queues the next blocks up to the target, or, when caught up, checks
// that the last emitted block is still canonical.
func (s *split) advance(ctx context.Context) error {
	target, ok := s.target()
	if !ok {
		return nil
	}
	if s.next <= target {
		to := min(target, s.next+uint64(s.cfg.BatchSize*s.cfg.Concurrency)-1)
		blocks, err := s.eps.fetchRange(ctx, s.next, to)
		if err != nil {
			return fmt.Errorf("fetch blocks %d..%d: %w", s.next, to, err)
		}
		if len(blocks) == 0 {
			// The head we saw is gone: the chain got shorter. Look at the top again.
			s.topChecked, s.pollNow = false, true
			return s.checkTop(ctx)
		}
		for _, b := range blocks {
			if len(s.ring) > 0 && b.Parent != s.ring[len(s.ring)-1].Hash {
				return s.reorg(ctx)
			}
			s.accept(b)
		}
		s.progress()
		return nil
	}
	if !s.topChecked {
		return s.checkTop(ctx)
	}
	return nil
}

// checkTop checks the last emitted block against the canonical chain, and handles a re-org
// when it is not on it.
func (s *split) checkTop(ctx context.Context) error {
	if len(s.ring) > 0 {
		top := s.ring[len(s.ring)-1]
		h, err := s.eps.header(ctx, top.Number, false)
		if err != nil {
			return fmt.Errorf("check block %d: %w", top.Number, err)
		}
		if h == nil || h.Hash() != top.Hash {
			return s.reorg(ctx)
		}
	}
	s.topChecked = true
	return nil
}

// accept queues the inserts of b, the next canonical block, and remembers it.
func (s *split) accept(b block) {
	slices.SortFunc(b.Logs, func(x, y types.Log) int { return int(x.Index) - int(y.Index) })
	for i := range b.Logs {
		s.queue = append(s.queue, queued{Kind: stream.Insert, Log: &b.Logs[i], Time: b.Time})
	}
	s.ring = append(s.ring, b)
	if len(s.ring) > s.cfg.MaxReorgDepth {
		// The oldest block can no longer be retracted: no record at or before its time
		// follows (block times increase along a chain, in whole seconds).
		old := s.ring[0]
		s.ring[0] = block{}
		s.ring = s.ring[1:]
		s.queue = append(s.queue, queued{IsMark: true, Mark: int64(old.Time)*1000 + 999})
	}
	s.next = b.Number + 1
	s.stats.Blocks++
	s.stats.Logs += uint64(len(b.Logs))
}

// reorg walks back from the last emitted block to the newest one still canonical, queues a
// retraction for every log of the blocks above it (newest block first, last log first) and
// rewinds next to the block after it.
func (s *split) reorg(ctx context.Context) error {
	i := len(s.ring) - 1
	for ; i >= 0; i-- {
		h, err := s.eps.header(ctx, s.ring[i].Number, false)
		if err != nil {
			return fmt.Errorf("re-org: look up block %d: %w", s.ring[i].Number, err)
		}
		if h != nil && h.Hash() == s.ring[i].Hash {
			break
		}
	}
	if i < 0 && len(s.ring) > 0 && s.ring[0].Number > s.cfg.FromBlock {
		return fmt.Errorf("chain: %w: none of the last %d emitted blocks (%d..%d) is canonical any more",
			ErrReorgTooDeep, len(s.ring), s.ring[0].Number, s.ring[len(s.ring)-1].Number)
	}
	depth := len(s.ring) - 1 - i
	for j := len(s.ring) - 1; j > i; j-- {
		b := s.ring[j]
		for k := len(b.Logs) - 1; k >= 0; k-- {
			s.queue = append(s.queue, queued{Kind: stream.Retract, Log: &b.Logs[k], Time: b.Time})
			s.stats.Retracts++
		}
	}
	if i >= 0 {
		s.next = s.ring[i].Number + 1
	} else {
		s.next = s.cfg.FromBlock
	}
	s.cfg.Logger.Info("chain: re-org", "depth", depth, "ancestor", int64(s.next)-1, "retracts", s.stats.Retracts)
	clear(s.ring[i+1:])
	s.ring = s.ring[:i+1]
	s.topChecked = false
	s.stats.Reorgs++
	s.stats.DeepestReorg = max(s.stats.DeepestReorg, uint64(depth))
	return nil
}

// progress logs the catch-up rate now and then.
func (s *split) progress() {
	now := time.Now()
	if s.lastProgressLog.IsZero() {
		s.lastProgressLog, s.lastProgressNext = now, s.next
		return
	}
	if d := now.Sub(s.lastProgressLog); d >= 5*time.Second {
		s.cfg.Logger.Info("chain: following", "next", s.next, "head", s.headNum,
			"blocks_per_s", float64(s.next-s.lastProgressNext)/d.Seconds(), "reorgs", s.stats.Reorgs)
		s.lastProgressLog, s.lastProgressNext = now, s.next
	}
}

// wait waits briefly for a new head, so that an idle follower does not spin.
func (s *split) wait(ctx context.Context) {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	if s.sub == nil {
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return
	}
	select {
	case h := <-s.heads:
		s.setHead(h.Number.Uint64(), h.Hash())
	case <-t.C:
	case <-ctx.Done():
	}
}

// Close ends the subscription and closes the connections.
func (s *split) Close() error {
	if s.sub != nil {
		s.sub.Unsubscribe()
		s.sub = nil
	}
	s.eps.close()
	return nil
}
