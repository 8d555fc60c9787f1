package chain

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// Config says which node to follow, which logs to take and how careful to be. Every field
// has a usable zero value except Endpoints.
type Config struct {
	// Endpoints are the JSON-RPC URLs of one chain (http://, https://, ws://, wss://). Calls
	// go to one endpoint at a time and rotate to the next on failure; new heads are
	// subscribed to over the first WebSocket endpoint that answers. With no WebSocket
	// endpoint the stage polls.
	Endpoints []string

	// Addresses limits the logs to these contracts; empty means every contract.
	Addresses []common.Address
	// Topics filters by topic position as eth_getLogs does: Topics[i] lists the accepted
	// values of topic i (empty: any). Empty Topics accepts every log.
	Topics [][]common.Hash
	// Decoder turns logs into events. Nil means DefaultDecoder: ERC-20 and ERC-721
	// Transfer.
	Decoder *Decoder

	// FromBlock is the first block read (catch-up starts there). 0 is the genesis.
	FromBlock uint64
	// UntilBlock, when HasUntil, is the last block: the source ends once it has emitted it
	// and has seen a head at UntilBlock+Confirmations. Otherwise the source follows the
	// chain for ever.
	UntilBlock uint64
	HasUntil   bool

	// Confirmations (C) holds a block back until C blocks are on top of it: a re-org of
	// depth ≤ C then never reaches the output, at the price of C blocks of latency. 0 emits
	// a block as soon as it is the head.
	Confirmations uint64
	// MaxReorgDepth is how many emitted blocks the stage remembers (with their logs) to
	// retract on a re-org; a deeper re-org fails the stage with ErrReorgTooDeep. It also
	// delays watermarks: a block's time becomes the watermark only once it has left this
	// window, since until then a re-org may still retract it. Default 64.
	MaxReorgDepth int

	// PollInterval is how often the head is polled (eth_blockNumber) when no subscription is
	// up. Default 1s.
	PollInterval time.Duration
	// BatchSize is how many blocks one JSON-RPC batch covers (one batch of headers, then one
	// of eth_getLogs by block hash). Default 50.
	BatchSize int
	// Concurrency is how many batches are in flight during catch-up. Default 4.
	Concurrency int

	// RetryBase and RetryMax bound the backoff between attempts of a failing call (the
	// delay doubles from RetryBase up to RetryMax, with full jitter). Defaults 50ms and 2s.
	RetryBase, RetryMax time.Duration
	// RetryLimit is how long a call may keep failing on every endpoint before the stage
	// gives up with an error that names the endpoints and the last failure. Default 30s.
	RetryLimit time.Duration
	// ResubscribeInterval is how long the stage polls after a subscription broke before it
	// tries to subscribe again. Default 2s.
	ResubscribeInterval time.Duration

	// Logger receives progress and failures. Default slog.Default().
	Logger *slog.Logger
}

// ErrReorgTooDeep is the error of a re-org that goes below the blocks the stage remembers.
var ErrReorgTooDeep = errors.New("re-org deeper than MaxReorgDepth")

// withDefaults checks c and fills in the defaults, once.
func (c Config) withDefaults() (Config, error) {
	if len(c.Endpoints) == 0 {
		return c, errors.New("chain: no endpoints")
	}
	for _, e := range c.Endpoints {
		u, err := url.Parse(e)
		if err != nil {
			return c, fmt.Errorf("chain: endpoint %q: %w", e, err)
		}
		switch u.Scheme {
		case "http", "https", "ws", "wss":
		default:
			return c, fmt.Errorf("chain: endpoint %q: want an http(s):// or ws(s):// URL", e)
		}
	}
	if c.HasUntil && c.UntilBlock < c.FromBlock {
		return c, fmt.Errorf("chain: UntilBlock %d is before FromBlock %d", c.UntilBlock, c.FromBlock)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxReorgDepth", int64(c.MaxReorgDepth)}, {"BatchSize", int64(c.BatchSize)}, {"Concurrency", int64(c.Concurrency)},
		{"PollInterval", int64(c.PollInterval)}, {"RetryBase", int64(c.RetryBase)}, {"RetryMax", int64(c.RetryMax)},
		{"RetryLimit", int64(c.RetryLimit)}, {"ResubscribeInterval", int64(c.ResubscribeInterval)},
	} {
		if f.v < 0 {
			return c, fmt.Errorf("chain: negative %s", f.name)
		}
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxReorgDepth == 0 {
		c.MaxReorgDepth = 64
	}
	if c.BatchSize == 0 {
		c.BatchSize = 50
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	def(&c.PollInterval, time.Second)
	def(&c.RetryBase, 50*time.Millisecond)
	def(&c.RetryMax, 2*time.Second)
	def(&c.RetryLimit, 30*time.Second)
	def(&c.ResubscribeInterval, 2*time.Second)
	if c.RetryMax < c.RetryBase {
		return c, fmt.Errorf("chain: RetryMax %v below RetryBase %v", c.RetryMax, c.RetryBase)
	}
	if c.Decoder == nil {
		c.Decoder = DefaultDecoder()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
