package actor

import (
	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/stream"
)

// Batch carries records from a sender instance to a receiver instance. Locally Records is a
// []stream.Record[T] passed by pointer; across nodes it is encoded with the stage's Codec.
type Batch struct {
	// Port is the receiver's input port.
	Port int
	// Records is the typed slice of records.
	Records any
	// N is len(Records).
	N int
	// Marks are the watermarks that travel with the records, in order: Marks[i].Watermark
	// takes effect before record Marks[i].Pos (Pos == N: after the last record).
	Marks []Mark
	// From identifies the channel's sender among all instances of the job.
	From int
	// Sender, Group and Dest say where the credit for this batch goes back to.
	Sender *pa.PID
	Group  int
	Dest   int

	// start and mark say how far the receiver got in a batch it had to pause; eos marks
	// the queue entry of an EndOfStream.
	start, mark int
	eos         bool
}

// Mark is a watermark at a position in a batch.
type Mark struct {
	Pos       int
	Watermark int64
	// Barrier, when not 0, is the id of a checkpoint barrier at this position: what comes
	// before it belongs to the checkpoint, what comes after to the next.
	Barrier int64
}

// Watermark bounds: no watermark yet, and the end of event time (an input that has ended).
const (
	MinWatermark = stream.MinWatermark
	MaxWatermark = stream.MaxWatermark
)

// Credit returns one batch credit to a sender's channel. Locally it also hands back the
// batch's slice, which the sender reuses: records then cost no allocation at steady state.
type Credit struct {
	Group   int
	Dest    int
	Records any
}

// EndOfStream says a sender has sent its last batch on a port.
type EndOfStream struct {
	Port int
	From int
}

// Messages an instance sends to itself.
type (
	startMsg struct{}
	pullMsg  struct{}
	// flushTickMsg is the linger tick; all (the sync driver's Flush) drains every
	// Holder, not only what has waited long enough.
	flushTickMsg struct{ all bool }
	timerTickMsg struct{}
	idleTickMsg  struct{}
	// triggerMsg starts checkpoint id at an instance that has no input left to bring the
	// barrier (a source, or a stage whose inputs have all ended).
	triggerMsg struct{ id int64 }
	// completeMsg says checkpoint id is complete: two-phase sinks commit.
	completeMsg struct{ id int64 }
	wmTickMsg   struct{}
)
