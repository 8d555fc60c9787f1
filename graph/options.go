package graph

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/stream"
)

// Option configures one stage.
type Option interface{ apply(*stageOpts) }

type stageOpts struct {
	name      string
	codec     any
	keyCodec  any
	emit      stream.EmitMode
	lateness  time.Duration
	changelog bool
	trigger   stream.Trigger
	ttl       stream.TTL
	// noLocalAgg turns local aggregation off (LocalAggregation(false)).
	noLocalAgg bool
}

type optFunc func(*stageOpts)

func (f optFunc) apply(o *stageOpts) { f(o) }

// Name names a stage. Names are unique in a graph; unnamed stages get kind-N.
func Name(name string) Option { return optFunc(func(o *stageOpts) { o.name = name }) }

// WithCodec gives the codec of the records a stage produces (for KeyBy: of the records it
// re-partitions). Built-in types (strings, numbers, []byte) have one already.
func WithCodec[T any](c stream.Codec[T]) Option {
	return codecOption{func(o *stageOpts) { o.codec = c }}
}

// codecOption is WithCodec or WithKeyCodec: the options a table's stages hand to the KeyBy
// in front of them.
type codecOption struct{ optFunc }

// WithKeyCodec gives KeyBy the codec of its key type, whose bytes are hashed to a key
// group. Built-in key types (strings, integers, float64) need none.
func WithKeyCodec[K any](c stream.Codec[K]) Option {
	return codecOption{func(o *stageOpts) { o.keyCodec = c }}
}

// Emit sets when a running aggregate sends its results (default stream.EmitPerBatch).
func Emit(m stream.EmitMode) Option { return optFunc(func(o *stageOpts) { o.emit = m }) }

// Lateness lets a window stage take records up to d after a window's end (in event time);
// each such record fires the window again. Later records go to the late side output.
func Lateness(d time.Duration) Option { return optFunc(func(o *stageOpts) { o.lateness = d }) }

// Changelog makes a window stage send a retraction of a window's previous result before each
// re-firing, instead of a plain update.
func Changelog() Option { return optFunc(func(o *stageOpts) { o.changelog = true }) }

// Trigger sets when a window stage fires (default: when the watermark passes a window's end).
func Trigger(t stream.Trigger) Option { return optFunc(func(o *stageOpts) { o.trigger = t }) }

// StateTTL makes a Process or Aggregate stage drop a key's state once ttl has passed since
// the key's last record (stream.EventTimeTTL or stream.ProcessingTimeTTL).
func StateTTL(ttl stream.TTL) Option { return optFunc(func(o *stageOpts) { o.ttl = ttl }) }

// JobOption configures how a graph runs.
type JobOption func(*actor.Config)

// Parallelism sets how many splits sources are read with (default GOMAXPROCS). n < 1 is an
// error from Build.
func Parallelism(n int) JobOption {
	return func(c *actor.Config) { c.Parallelism = atLeastOne(c, "parallelism", n) }
}

// MaxKeyGroups sets the number of key groups (default 128). n < 1 is an error from Build.
func MaxKeyGroups(n int) JobOption {
	return func(c *actor.Config) { c.MaxKeyGroups = atLeastOne(c, "max key groups", n) }
}

// BatchSize sets how many records go in one batch between actors (default 512). n < 1 is an
// error from Build.
func BatchSize(n int) JobOption {
	return func(c *actor.Config) { c.BatchSize = atLeastOne(c, "batch size", n) }
}

// Linger sets how long a partly filled batch may wait (default 5ms). d ≤ 0 is an error from
// Build.
func Linger(d time.Duration) JobOption {
	return func(c *actor.Config) { c.Linger = positive(c, "linger", d) }
}

// IdleTimeout lets an input that has sent nothing for d stop holding back the watermark of
// the stages it feeds (default: never). d ≤ 0 is an error from Build.
func IdleTimeout(d time.Duration) JobOption {
	return func(c *actor.Config) { c.IdleTimeout = positive(c, "idle timeout", d) }
}

// WatermarkInterval sets how often, at most, an instance sends its watermark on to
// receivers it has no records for (default 50ms). d ≤ 0 is an error from Build.
func WatermarkInterval(d time.Duration) JobOption {
	return func(c *actor.Config) { c.WatermarkInterval = positive(c, "watermark interval", d) }
}

// Credits sets how many batches may be in flight per channel (default 4). n < 1 is an error
// from Build.
func Credits(n int) JobOption {
	return func(c *actor.Config) { c.Credits = atLeastOne(c, "credits", n) }
}

// atLeastOne returns n, and records for Build that an option was given a count below 1: an
// explicit 0 is a mistake, not a request for the default.
func atLeastOne(c *actor.Config, name string, n int) int {
	if n < 1 {
		c.OptionErrors = append(c.OptionErrors, fmt.Errorf("%s %d: want at least 1", name, n))
	}
	return max(n, 0)
}

// positive returns d, and records for Build that an option was given a duration ≤ 0.
func positive(c *actor.Config, name string, d time.Duration) time.Duration {
	if d <= 0 {
		c.OptionErrors = append(c.OptionErrors, fmt.Errorf("%s %v: want more than 0", name, d))
	}
	return max(d, 0)
}

// Clock sets the processing-time clock (tests pass a stream.ManualClock).
func Clock(clock stream.Clock) JobOption { return func(c *actor.Config) { c.Clock = clock } }

// Logger sets the logger of the runtime (and, filtered to Warn and above, of Proto.Actor).
func Logger(l *slog.Logger) JobOption { return func(c *actor.Config) { c.Logger = l } }

// ProtoActorLogger sets the logger of Proto.Actor's own lines, all levels (default: Logger,
// Warn and above).
func ProtoActorLogger(l *slog.Logger) JobOption {
	return func(c *actor.Config) { c.ProtoActorLogger = l }
}

// OnError sets what happens when a user function fails on a record (default actor.Skip):
// skip it, restart the job from its last completed checkpoint (actor.RestartStage, which
// needs Checkpoints), or fail the job. A failing state store always fails the job.
func OnError(p actor.ErrorPolicy) JobOption { return func(c *actor.Config) { c.ErrorPolicy = p } }

// DeadLetters sets the dead-letter output (default: a warning in the log). It is called
// from many actors at once.
func DeadLetters(f func(stream.DeadLetter)) JobOption {
	return func(c *actor.Config) { c.DeadLetters = f }
}

// Admin serves the job's admin endpoint (JSON: /status, /topology, /stages, /checkpoints,
// /state/{stage}?key=K; Prometheus: /metrics) on addr while it runs. A host left out
// (":9090") means 127.0.0.1: the endpoint is on loopback unless addr says otherwise; port
// 0 picks a free port (Job.AdminAddr tells which). cmd/eddytop shows it.
func Admin(addr string) JobOption { return func(c *actor.Config) { c.Admin = addr } }

// MaxDeadLetters fails the job once it has sent more than n dead letters (default 0: no
// limit; they are counted, reported and the job goes on).
func MaxDeadLetters(n int64) JobOption { return func(c *actor.Config) { c.MaxDeadLetters = n } }
