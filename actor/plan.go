package actor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eddyflow/eddy/stream"
)

// Identity names one instance of a vertex: job/stage/index, where index is a key group for
// keyed stages and a split for sources.
type Identity struct {
	Job   string
	Stage string
	Index int
}

func (id Identity) String() string { return fmt.Sprintf("%s/%s/%d", id.Job, id.Stage, id.Index) }

// Placement says on which node an identity runs. The cluster package provides one that
// spreads identities over peers; Local runs them all here.
type Placement interface {
	// Node returns the node that runs id, or "" for this node. In a run with a
	// ClusterRun it is that node's Proto.Actor address (cluster.RunOn makes such a
	// placement).
	Node(id Identity) string
}

// Local is the placement of a single process: every identity runs here.
type Local struct{}

// Node returns "": here.
func (Local) Node(Identity) string { return "" }

// Vertex is one node of a physical plan: a chain of fused stages run as Instances actors.
type Vertex struct {
	// Name identifies the vertex in identities and metrics; unique in a plan.
	Name string
	// Stages lists the logical stages fused into this vertex, in chain order.
	Stages []string
	// Instances is how many actors run the vertex.
	Instances int
	// Keyed says the instances are key groups.
	Keyed bool
	// Source says the vertex reads a source (it has no inputs).
	Source bool
	// New makes the task of one instance.
	New func(env *Env) (Task, error)
}

// Partitioning says how a channel spreads a sender's records over the receiver's instances.
type Partitioning uint8

const (
	// Hash sends each record to the key group of its key.
	Hash Partitioning = iota
	// Rebalance spreads records round-robin, a batch at a time, skipping receivers that
	// have no credit left.
	Rebalance
)

func (p Partitioning) String() string {
	switch p {
	case Hash:
		return "hash"
	case Rebalance:
		return "rebalance"
	default:
		return fmt.Sprintf("partitioning(%d)", uint8(p))
	}
}

// Edge is a channel group from every instance of vertex From to the instances of vertex To,
// delivering to input port Port.
type Edge struct {
	From, To     int
	Port         int
	Partitioning Partitioning
	// Codec encodes the records for receivers on other nodes; an edge without one runs
	// within a node only.
	Codec RecordsCodec
}

// Plan is a physical plan: vertices and the edges between them. Edges leaving a vertex are
// numbered in the order they appear here; a task's Env.Output(i) is its i-th.
type Plan struct {
	Job      string
	Vertices []*Vertex
	Edges    []Edge
	// OnEnd runs once when the job ends, however it ends (close sinks).
	OnEnd []func() error
}

// Task is the logic of one vertex instance: the fused chain with its input handling. The
// runtime calls its methods from one goroutine at a time. A task that needs no timers or no
// inputs embeds NopTask.
//
// Any method may emit more than the outputs can take: a Writer then suspends the call until
// credit returns (the runtime runs it as a coroutine) and the task never sees it. When the
// instance stops meanwhile, the call is unwound by a panic: a task that recovers panics must
// panic again with what it recovered when Unwinding reports true.
type Task interface {
	// Read reads at most max records of a source split into the chain; io.EOF ends it.
	Read(ctx context.Context, max int) (int, error)
	// Process handles records[start:end] of a batch that arrived on port. It stops early
	// when Env.Blocked reports an output without credit, and returns the index of the first
	// record it did not handle (end when done).
	Process(port int, records any, start, end int) int
	// Watermark tells the task that its input watermark (the minimum over its input
	// channels) has advanced to w: it fires what is due and passes w on to its outputs.
	Watermark(w int64)
	// EndBatch is called when a batch (or a chunk that Read returned) is done: compacted
	// results go out, sink buffers are written.
	EndBatch()
	// NextTimer returns when the earliest processing-time timer is due.
	NextTimer() (time.Time, bool)
	// FireTimers fires every timer due at now.
	FireTimers(now time.Time)
	// EndInput is called once every input has ended, before the final flush.
	EndInput()
	// Reset drops the task's state.
	Reset()
	// Snapshot returns the task's state as of checkpoint barrier id: everything before the
	// barrier applied, nothing after (sources: the position to rewind to). nil: no state.
	Snapshot(id int64) ([]byte, error)
	// CheckpointComplete tells the task that checkpoint id is complete everywhere.
	CheckpointComplete(id int64)
	// Restore loads state that Snapshot returned, before the task runs (recovery).
	Restore(state []byte) error
	// Close releases the task (source splits).
	Close() error
}

// Inspector is implemented by tasks that can show the state of a key (for tests and the
// admin endpoint).
type Inspector interface {
	// Inspect returns the state held for key, and whether there is any.
	Inspect(key any) (any, bool)
}

// NopTask implements every Task method as a no-op; tasks embed it.
type NopTask struct{}

func (NopTask) Read(context.Context, int) (int, error) {
	return 0, fmt.Errorf("read: not a source")
}
func (NopTask) Process(_ int, _ any, start, _ int) int { return start }
func (NopTask) Watermark(int64)                        {}
func (NopTask) EndBatch()                              {}
func (NopTask) NextTimer() (time.Time, bool)           { return time.Time{}, false }
func (NopTask) FireTimers(time.Time)                   {}
func (NopTask) EndInput()                              {}
func (NopTask) Reset()                                 {}
func (NopTask) Snapshot(int64) ([]byte, error)         { return nil, nil }
func (NopTask) CheckpointComplete(int64)               {}
func (NopTask) Restore([]byte) error                   { return nil }
func (NopTask) Close() error                           { return nil }

// ErrorPolicy says what happens when a user function fails on a record (it returns an
// error or panics) or a record cannot be handled (a side output nobody takes, say). It never
// applies to failures of the engine or of a state store: those fail the job with their
// error, whatever the policy (Env.Fail). See docs/decisions-failure.md.
type ErrorPolicy uint8

const (
	// Skip sends the record to the dead-letter output and goes on (the default). What the
	// failing call did to its key's state, or emitted, before it failed stays.
	Skip ErrorPolicy = iota
	// RestartStage restarts the job from its last completed checkpoint (Flink's full
	// restart strategy), the failing stage's key groups with every other instance: the run
	// stops, each instance restores its state from that checkpoint (from nothing when none
	// has completed; on the Badger backend into a fresh generation, so what a key group wrote
	// back since, and what it had not written back yet, are gone), sources rewind, two-phase
	// sinks drop what they had not committed, and the records since the checkpoint are read
	// again, the failing one included. A record that fails once (a flaky lookup, say) so
	// counts exactly once, in the state and in a two-phase sink's output; a plain sink sees
	// the output since the checkpoint twice (at least once), as in Flink. A record that keeps
	// failing fails the job after graph's restart attempts (3), as FailJob does. Restarting
	// the failing stage alone cannot be exact: the records it took since the checkpoint are
	// gone from its inputs, and replaying them to it alone would need every channel logged.
	//
	// The run ends with a *RestartError; graph.Job.Run restarts it in the process, and on a
	// cluster the nodes restart the run together from the newest checkpoint. It needs
	// checkpoints (Config.Checkpoints): without them there is nothing to restart from but
	// the start, which sources that cannot rewind do not have.
	RestartStage
	// FailJob sends the record to the dead-letter output and fails the job.
	FailJob
)

// ErrRestart is what a run under RestartStage ends with when a user function failed: a
// *RestartError, which errors.Is matches to it.
var ErrRestart = errors.New("restart from the last completed checkpoint")

// RestartError ends a run under RestartStage: a user function of Stage failed on a record
// in instance Identity, for Reason.
type RestartError struct {
	Identity Identity
	Stage    string
	Reason   string
}

func (e *RestartError) Error() string {
	return fmt.Sprintf("stage %s (%s): %s: %v", e.Stage, e.Identity, e.Reason, ErrRestart)
}

// Is makes errors.Is(err, ErrRestart) hold.
func (e *RestartError) Is(target error) bool { return target == ErrRestart }

func (p ErrorPolicy) String() string {
	return [...]string{"skip", "restart-stage", "fail-job"}[p]
}

var _ = stream.Insert
