package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
)

// Config configures how a plan runs. The zero value of every field means its default.
type Config struct {
	// Parallelism is how many splits a source is read with and how many instances a
	// stateless vertex after a fan-in runs. More than the cores rarely helps. Default:
	// runtime.GOMAXPROCS(0).
	Parallelism int
	// MaxKeyGroups is how many key groups keyed stages have, each its own actor and unit of
	// state. It is fixed for the life of a job's state (like Flink's max parallelism); more
	// groups spread load finer but cost a batch buffer each per sender. Default 128.
	MaxKeyGroups int
	// BatchSize is how many records a sender buffers per destination before it sends them,
	// and the most a batch ever holds: an operator that emits more at once (a FlatMap's
	// fan-out, a window's firings, the end of input) waits in the middle until credit
	// returns. Larger batches amortise the per-message cost; smaller ones cut latency.
	// Default 512.
	BatchSize int
	// Linger is how long a partly filled batch may wait before it is sent anyway. Default 5ms.
	Linger time.Duration
	// Credits is how many batches a sender may have in flight on one channel. With
	// BatchSize it bounds memory, whatever the operators emit: a receiver's mailbox holds at
	// most senders × Credits batches, and a sender holds, besides its batches in flight, at
	// most one partly filled batch per destination and one per fused stage. Default 4.
	Credits int
	// Clock gives processing time and timers. Default: the real clock. Tests pass a
	// stream.ManualClock.
	Clock stream.Clock
	// Logger receives the runtime's logs. Default: slog.Default().
	Logger *slog.Logger
	// ProtoActorLogger receives Proto.Actor's own logs. Proto.Actor logs every start and
	// stop at Info ("actor system started"), which is noise to a user of Eddy. Default:
	// Logger, passing on Warn and above only.
	ProtoActorLogger *slog.Logger
	// Placement says where identities run. Default: Local.
	Placement Placement
	// ErrorPolicy says what happens when a user function fails on a record: skip it,
	// restart from the last completed checkpoint, or fail the job. Failures of the engine
	// and of state stores always fail the job. Default: Skip.
	ErrorPolicy ErrorPolicy
	// WatermarkInterval is how often, at most, an instance sends its watermark on to
	// receivers it has no records for (records carry it with them). Shorter moves event
	// time downstream sooner; longer sends fewer messages. Default 50ms.
	WatermarkInterval time.Duration
	// IdleTimeout is how long an input channel may send nothing before it stops holding
	// back its receiver's watermark (the minimum over its channels); it counts again as
	// soon as it sends. 0: channels never go idle, and one silent input stops event time.
	IdleTimeout time.Duration
	// CheckpointInterval is how often the job takes a checkpoint, when Checkpoints is set:
	// barriers flow with the records, stages snapshot their state as a barrier passes, and
	// Checkpoints stores the result. Shorter loses less work on a failure; longer costs
	// less. Default (with Checkpoints set): 1s.
	CheckpointInterval time.Duration
	// CheckpointTimeout is how long a checkpoint may take, from its trigger to its last
	// acknowledgement, before it is aborted (counted as failed, nothing saved; what its
	// instances wrote is deleted by retention) and the next one starts: a lost
	// acknowledgement, or an instance stuck, does not stop checkpoints for good. Default
	// (with Checkpoints set): DefaultCheckpointTimeout.
	CheckpointTimeout time.Duration
	// Checkpoints stores complete checkpoints. nil: no checkpoints.
	Checkpoints CheckpointSink
	// MicroBatch, when > 0, runs the job in micro-batches of this processing-time interval
	// (graph.MicroBatch paces the sources): each batch ends with a checkpoint, the batch's
	// commit, so checkpoints come at batch ends only and CheckpointInterval is not used.
	MicroBatch time.Duration
	// MicroBatchRecords bounds how many records a source split reads in one micro-batch:
	// larger batches amortise more, smaller ones end sooner. Default 100,000.
	MicroBatchRecords int
	// StateBackend is where the stages keep keyed state; the runtime does not look into it
	// (graph.BadgerState sets a Badger database). nil: memory.
	StateBackend any
	// Restore, when set, is the checkpoint the job starts from: each instance loads its
	// state from it (sources rewind), and checkpoint ids go on after its ID.
	Restore *Checkpoint
	// DeadLetters receives every record that could not be processed, with the reason. It
	// is called from many actors at once. Default: a warning in the log. Dead letters are
	// counted per stage either way.
	DeadLetters func(stream.DeadLetter)
	// OptionErrors are mistakes found while options were applied (an option cannot return
	// an error, so graph's options put them here); Validate reports them first.
	OptionErrors []error
	// Admin is the address graph.Job.Run serves the job's admin endpoint on while it runs
	// (internal/admin); the runtime does not use it. "": none.
	Admin string
	// MaxDeadLetters, when above 0, fails the job once it has sent more dead letters than
	// that. 0: no limit (they are counted and reported, and the job goes on).
	MaxDeadLetters int64
	// Cluster, when set, makes a run this node's part of a job that spans nodes: only the
	// identities Placement puts here run here (Placement.Node returns the Proto.Actor
	// address of the node that runs an identity). The cluster package sets it.
	Cluster *ClusterRun
}

// ClusterRun is what a run needs to know of the nodes it runs with. Every node runs the
// same plan with the same placement and epoch.
type ClusterRun struct {
	// System is the node's actor system, its remote started; the run does not stop it.
	System *pa.ActorSystem
	// Epoch numbers the job's runs on this set of nodes; actor names carry it, so that
	// what an earlier run sent reaches no actor of this one.
	Epoch int64
	// Coordinator is the address of the node that triggers checkpoints and saves the
	// final one; "" for this node.
	Coordinator string
	// Nodes are the addresses of the other nodes of the run.
	Nodes []string
	// StartTimeout bounds the wait for every node to start the run. Default 30s.
	StartTimeout time.Duration
	// Fence, when set, is asked by the coordinator before it saves a checkpoint: an error
	// says another run holds the job now (a newer epoch), and this run fails without saving
	// or committing, so that two runs never both commit.
	Fence func() error
}

// Validate fills in defaults and rejects impossible values.
func (c *Config) Validate() error {
	if len(c.OptionErrors) > 0 {
		return fmt.Errorf("config: %w", errors.Join(c.OptionErrors...))
	}
	checks := []struct {
		name string
		v    int64
		min  int64
	}{
		{"parallelism", int64(c.Parallelism), 0},
		{"max key groups", int64(c.MaxKeyGroups), 0},
		{"batch size", int64(c.BatchSize), 0},
		{"credits", int64(c.Credits), 0},
		{"linger", int64(c.Linger), 0},
		{"idle timeout", int64(c.IdleTimeout), 0},
		{"watermark interval", int64(c.WatermarkInterval), 0},
		{"checkpoint interval", int64(c.CheckpointInterval), 0},
		{"checkpoint timeout", int64(c.CheckpointTimeout), 0},
		{"micro-batch interval", int64(c.MicroBatch), 0},
		{"micro-batch records", int64(c.MicroBatchRecords), 0},
		{"max dead letters", c.MaxDeadLetters, 0},
	}
	for _, ch := range checks {
		if ch.v < ch.min {
			if ch.name == "linger" || ch.name == "idle timeout" || ch.name == "watermark interval" || ch.name == "checkpoint interval" || ch.name == "checkpoint timeout" || ch.name == "micro-batch interval" {
				return fmt.Errorf("config: %s %v is negative", ch.name, time.Duration(ch.v))
			}
			return fmt.Errorf("config: %s %d is negative", ch.name, ch.v)
		}
	}
	if c.ErrorPolicy > FailJob {
		return fmt.Errorf("config: unknown error policy %d", c.ErrorPolicy)
	}
	if c.ErrorPolicy == RestartStage && c.Checkpoints == nil {
		return errors.New("config: error policy restart-stage restarts from the last completed checkpoint, and the job takes none (give it checkpoints)")
	}
	if c.Parallelism == 0 {
		c.Parallelism = runtime.GOMAXPROCS(0)
	}
	if c.MaxKeyGroups == 0 {
		c.MaxKeyGroups = operator.DefaultMaxKeyGroups
	}
	if c.BatchSize == 0 {
		c.BatchSize = 512
	}
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.WatermarkInterval == 0 {
		c.WatermarkInterval = 50 * time.Millisecond
	}
	if c.Checkpoints != nil && c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.Checkpoints != nil && c.CheckpointTimeout == 0 {
		c.CheckpointTimeout = DefaultCheckpointTimeout
	}
	if c.MicroBatch > 0 && c.Cluster != nil {
		return errors.New("config: micro-batch mode runs on one node, not in a cluster run")
	}
	if c.MicroBatch > 0 {
		c.CheckpointInterval = math.MaxInt64 // checkpoints close batches, on request
		if c.MicroBatchRecords == 0 {
			c.MicroBatchRecords = 100_000
		}
	}
	if c.Credits == 0 {
		c.Credits = 4
	}
	if c.Clock == nil {
		c.Clock = stream.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ProtoActorLogger == nil {
		c.ProtoActorLogger = slog.New(warnAndAbove{c.Logger.Handler()})
	}
	if c.Placement == nil {
		c.Placement = Local{}
	}
	return nil
}

func (c *ClusterRun) startTimeout() time.Duration {
	if c.StartTimeout > 0 {
		return c.StartTimeout
	}
	return 30 * time.Second
}

// warnAndAbove passes on records at Warn and above.
type warnAndAbove struct{ slog.Handler }

func (h warnAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h warnAndAbove) WithAttrs(as []slog.Attr) slog.Handler {
	return warnAndAbove{h.Handler.WithAttrs(as)}
}
func (h warnAndAbove) WithGroup(name string) slog.Handler {
	return warnAndAbove{h.Handler.WithGroup(name)}
}
