package infer

import (
	"fmt"
	"time"

	"github.com/eddyflow/eddy/stream"
)

// Option configures a Stage.
type Option interface{ apply(*config) }

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

// config is the stage's configuration; validate fills in the defaults.
type config struct {
	// maxBatch is the most rows in one request to the model. Larger batches amortise the
	// per-call cost (an HTTP round trip, a session run) and delay the first record of each.
	// Default 64.
	maxBatch int
	// concurrency bounds the requests in flight per instance of the stage. Default 4.
	concurrency int
	// timeout is the deadline of one request (each attempt). Default 10s.
	timeout time.Duration
	// retries is how many times a failed request is tried again. Default 3.
	retries int
	// backoff is the wait before the first retry, doubled for each next one up to
	// maxBackoff, with jitter. Defaults 20ms and 2s.
	backoff, maxBackoff time.Duration
	// unordered lets records go on in the order their requests complete.
	unordered bool
	// rate bounds requests per second over all instances of the stage; 0: no bound.
	rate float64
	// key, a func(T) string, routes records among versions; nil: by position.
	key any
	// name names the stage.
	name string
	// codec, a stream.Codec[T], for the records crossing into the stage.
	codec any
}

func (c *config) validate() error {
	if c.maxBatch == 0 {
		c.maxBatch = 64
	}
	if c.concurrency == 0 {
		c.concurrency = 4
	}
	if c.timeout == 0 {
		c.timeout = 10 * time.Second
	}
	if c.retries == 0 {
		c.retries = 3
	} else if c.retries < 0 { // NoRetries
		c.retries = 0
	}
	if c.backoff == 0 {
		c.backoff = 20 * time.Millisecond
	}
	if c.maxBackoff == 0 {
		c.maxBackoff = 2 * time.Second
	}
	for _, chk := range []struct {
		what string
		bad  bool
		v    any
	}{
		{"max batch", c.maxBatch < 1, c.maxBatch},
		{"concurrency", c.concurrency < 1, c.concurrency},
		{"timeout", c.timeout < 0, c.timeout},
		{"backoff", c.backoff < 0 || c.maxBackoff < c.backoff, fmt.Sprintf("%v..%v", c.backoff, c.maxBackoff)},
		{"rate", c.rate < 0, c.rate},
	} {
		if chk.bad {
			return fmt.Errorf("infer stage %q: bad %s %v", c.name, chk.what, chk.v)
		}
	}
	return nil
}

// MaxBatch sets the most rows in one request to the model (default 64). The stage cuts
// each batch it receives into requests of at most n rows.
//
// Batches form in the exchange in front of the stage, which sends one when it holds the
// job's BatchSize records or when its oldest has waited the job's Linger: Triton's dynamic
// batcher with the max queue delay = graph.Linger. Run the job with graph.BatchSize a
// multiple of MaxBatch (MaxBatch × Concurrency fills every request of a batch).
func MaxBatch(n int) Option { return optFunc(func(c *config) { c.maxBatch = n }) }

// Concurrency bounds the requests in flight per instance of the stage (default 4). With the
// credits of the exchange in front, it is the stage's backpressure: when every request is
// in flight the stage takes no more input, and a slow model slows the source.
func Concurrency(k int) Option { return optFunc(func(c *config) { c.concurrency = k }) }

// Timeout sets the deadline of each request (default 10s).
func Timeout(d time.Duration) Option { return optFunc(func(c *config) { c.timeout = d }) }

// Retries sets how many times a failed request is tried again (default 3); errors marked
// Permanent are not retried. After the last, the request's records go to the dead-letter
// output (and the job fails, under graph.OnError(actor.FailJob)).
func Retries(n int) Option {
	return optFunc(func(c *config) {
		c.retries = n
		if n == 0 {
			c.retries = -1
		}
	})
}

// Backoff sets the wait before the first retry (default 20ms), doubled for each next retry
// up to max (default 2s), with up to half of it left to chance so that instances that
// failed together do not retry together.
func Backoff(first, max time.Duration) Option {
	return optFunc(func(c *config) { c.backoff, c.maxBackoff = first, max })
}

// Unordered lets records go on in the order their requests complete, rather than the order
// they arrived (Flink's unordered AsyncIO): a slow request does not hold back the others.
func Unordered() Option { return optFunc(func(c *config) { c.unordered = true }) }

// RateLimit bounds the requests started per second over all instances of the stage.
func RateLimit(perSecond float64) Option { return optFunc(func(c *config) { c.rate = perSecond }) }

// Key routes records among the live versions of a Versions by the hash of key(record), so
// that a key always meets the same version (sticky A/B). Without it, records are spread by
// their position.
func Key[T any](key func(T) string) Option { return optFunc(func(c *config) { c.key = key }) }

// Name names the stage.
func Name(name string) Option { return optFunc(func(c *config) { c.name = name }) }

// WithCodec gives the codec of the records that cross into the stage (it runs behind an
// exchange). Without it, built-in types use theirs and others JSON.
func WithCodec[T any](codec stream.Codec[T]) Option {
	return optFunc(func(c *config) { c.codec = codec })
}
