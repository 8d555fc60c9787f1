package chain

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
)

// endpoints is the set of JSON-RPC endpoints of one chain: calls go to the current one and
// move to the next on failure, with backoff and jitter, until RetryLimit has passed with
// every attempt failing.
type endpoints struct {
	cfg Config

	// mu guards clients and cur.
	mu      sync.Mutex
	clients []*rpc.Client // dialled lazily; nil until then or after a failure
	cur     int
}

func newEndpoints(cfg Config) *endpoints {
	return &endpoints{cfg: cfg, clients: make([]*rpc.Client, len(cfg.Endpoints))}
}

func isWS(url string) bool {
	return strings.HasPrefix(url, "ws://") || strings.HasPrefix(url, "wss://")
}

// client returns the client of endpoint i, dialling it if needed.
func (e *endpoints) client(ctx context.Context, i int) (*rpc.Client, error) {
	e.mu.Lock()
	c := e.clients[i]
	e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := rpc.DialContext(dctx, e.cfg.Endpoints[i])
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", e.cfg.Endpoints[i], err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.clients[i] != nil { // another call dialled it meanwhile
		c.Close()
		return e.clients[i], nil
	}
	e.clients[i] = c
	return c, nil
}

// failed drops endpoint i's client after a failure (a WebSocket client is redialled on its
// next use) and moves the current endpoint on, unless another call already did.
func (e *endpoints) failed(i int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if isWS(e.cfg.Endpoints[i]) && e.clients[i] != nil {
		e.clients[i].Close()
		e.clients[i] = nil
	}
	if e.cur == i {
		e.cur = (i + 1) % len(e.clients)
	}
}

func (e *endpoints) current() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur
}

// do runs call on the current endpoint, and on failure again on the next ones with backoff,
// until it succeeds, ctx is done, or RetryLimit has passed since the first failure.
func (e *endpoints) do(ctx context.Context, what string, call func(ctx context.Context, c *rpc.Client) error) error {
	var first time.Time
	delay := e.cfg.RetryBase
	for attempt := 1; ; attempt++ {
		i := e.current()
		c, err := e.client(ctx, i)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = call(cctx, c)
			cancel()
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.failed(i)
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		if now.Sub(first) >= e.cfg.RetryLimit {
			return fmt.Errorf("chain: %s: every endpoint (%s) failed for %v, %d attempts; last error: %w",
				what, strings.Join(e.cfg.Endpoints, ", "), e.cfg.RetryLimit, attempt, err)
		}
		e.cfg.Logger.Warn("chain: call failed, retrying", "call", what, "endpoint", e.cfg.Endpoints[i], "attempt", attempt, "err", err)
		// Full jitter: a random wait in [0, delay), so that many clients do not retry in step.
		wait := time.Duration(rand.Int64N(int64(delay))) + time.Millisecond
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, e.cfg.RetryMax)
	}
}

// close closes every dialled client.
func (e *endpoints) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, c := range e.clients {
		if c != nil {
			c.Close()
			e.clients[i] = nil
		}
	}
}

// header returns the canonical header at number (the head's with latest), or nil when the
// chain is shorter.
func (e *endpoints) header(ctx context.Context, number uint64, latest bool) (*types.Header, error) {
	arg := "latest"
	if !latest {
		arg = hexutil.EncodeBig(new(big.Int).SetUint64(number))
	}
	var h *types.Header
	err := e.do(ctx, "eth_getBlockByNumber", func(ctx context.Context, c *rpc.Client) error {
		h = nil
		return c.CallContext(ctx, &h, "eth_getBlockByNumber", arg, false)
	})
	return h, err
}

// block is one fetched block: its header fields and its logs (those the filter accepts).
type block struct {
	Number uint64      `json:"n"`
	Hash   common.Hash `json:"h"`
	Parent common.Hash `json:"p"`
	Time   uint64      `json:"t"`
	Logs   []types.Log `json:"l,omitempty"`
}

// fetchBatch fetches blocks from..to (inclusive) in two JSON-RPC batches: the headers, then
// eth_getLogs by block hash. It stops at the first missing block (the chain got shorter).
func (e *endpoints) fetchBatch(ctx context.Context, from, to uint64) ([]block, error) {
	n := int(to - from + 1)
	headers := make([]*types.Header, n)
	err := e.do(ctx, "batch eth_getBlockByNumber", func(ctx context.Context, c *rpc.Client) error {
		elems := make([]rpc.BatchElem, n)
		for i := range elems {
			headers[i] = nil
			elems[i] = rpc.BatchElem{Method: "eth_getBlockByNumber",
				Args: []any{hexutil.EncodeBig(new(big.Int).SetUint64(from + uint64(i))), false}, Result: &headers[i]}
		}
		if err := c.BatchCallContext(ctx, elems); err != nil {
			return err
		}
		for _, el := range elems {
			if el.Error != nil {
				return el.Error
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	blocks := make([]block, 0, n)
	for i, h := range headers {
		if h == nil {
			break
		}
		if h.Number == nil || h.Number.Uint64() != from+uint64(i) {
			return nil, fmt.Errorf("chain: asked for block %d, got %v", from+uint64(i), h.Number)
		}
		blocks = append(blocks, block{Number: h.Number.Uint64(), Hash: h.Hash(), Parent: h.ParentHash, Time: h.Time})
	}
	if len(blocks) == 0 {
		return nil, nil
	}
	logs := make([][]types.Log, len(blocks))
	err = e.do(ctx, "batch eth_getLogs", func(ctx context.Context, c *rpc.Client) error {
		elems := make([]rpc.BatchElem, len(blocks))
		for i, b := range blocks {
			logs[i] = nil
			elems[i] = rpc.BatchElem{Method: "eth_getLogs", Args: []any{e.filterArg(b.Hash)}, Result: &logs[i]}
		}
		if err := c.BatchCallContext(ctx, elems); err != nil {
			return err
		}
		for _, el := range elems {
			if el.Error != nil {
				return el.Error
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range blocks {
		for _, l := range logs[i] {
			if l.BlockHash != blocks[i].Hash {
				return nil, fmt.Errorf("chain: eth_getLogs for block %s returned a log of block %s", blocks[i].Hash.Hex(), l.BlockHash.Hex())
			}
			if l.Removed {
				continue
			}
			blocks[i].Logs = append(blocks[i].Logs, l)
		}
	}
	return blocks, nil
}

// filterArg is the eth_getLogs filter of one block.
func (e *endpoints) filterArg(hash common.Hash) map[string]any {
	arg := map[string]any{"blockHash": hash}
	if len(e.cfg.Addresses) > 0 {
		arg["address"] = e.cfg.Addresses
	}
	if len(e.cfg.Topics) > 0 {
		topics := make([]any, len(e.cfg.Topics))
		for i, t := range e.cfg.Topics {
			switch len(t) {
			case 0:
				topics[i] = nil
			case 1:
				topics[i] = t[0]
			default:
				topics[i] = t
			}
		}
		arg["topics"] = topics
	}
	return arg
}

// fetchRange fetches blocks from..to in batches of BatchSize, Concurrency batches at a time,
// and returns them in block order, stopping at the first missing block.
func (e *endpoints) fetchRange(ctx context.Context, from, to uint64) ([]block, error) {
	type result struct {
		blocks []block
		err    error
	}
	size := uint64(e.cfg.BatchSize)
	var starts []uint64
	for s := from; s <= to; s += size {
		starts = append(starts, s)
	}
	results := make([]result, len(starts))
	sem := make(chan struct{}, e.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, s := range starts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			bs, err := e.fetchBatch(ctx, s, min(s+size-1, to))
			results[i] = result{bs, err}
		}()
	}
	wg.Wait()
	var out []block
	for i, r := range results {
		if r.err != nil {
			return out, r.err
		}
		out = append(out, r.blocks...)
		if uint64(len(r.blocks)) < min(starts[i]+size-1, to)-starts[i]+1 {
			break // the chain ends here (for now)
		}
	}
	return out, nil
}
