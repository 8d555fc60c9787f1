package stream

import "fmt"

// Kind says whether a record adds a fact or takes one back.
type Kind uint8

const (
	// Insert adds the record's value (the default, and the zero value).
	Insert Kind = iota
	// Retract takes back an earlier insert of the same value: a chain re-org un-happens a
	// block, a late firing replaces a result. Aggregators that can retract apply it.
	Retract
)

func (k Kind) String() string {
	switch k {
	case Insert:
		return "insert"
	case Retract:
		return "retract"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Record is the envelope every element travels in.
//
// The key of a record is not stored in the envelope: a keyed stage computes it from the value
// with its key selector (as Flink does), which keeps the envelope small for every stream.
// Keyed results (a running count, a reduce) carry their key in their value, as a KV.
type Record[T any] struct {
	// Value is the payload.
	Value T
	// Time is the event timestamp in Unix milliseconds; 0 when the source assigns none.
	Time int64
	// Kind is Insert or Retract.
	Kind Kind
}

// KV is a keyed value: the element type of keyed results.
type KV[K comparable, V any] struct {
	Key   K `json:"key"`
	Value V `json:"value"`
}

// DeadLetter is a record that could not be processed, with the reason. Dead letters go to the
// job's dead-letter output and are counted; they are never dropped in silence.
type DeadLetter struct {
	// Stage is the name of the stage (or source) that refused the record.
	Stage string
	// Reason says why, e.g. the error a user function returned or the value it panicked with.
	Reason string
	// Value is the record's value, or the raw input (a malformed line) when there is no value.
	Value any
	// Position locates raw input in its source: the 1-based line number for line and JSONL
	// file sources; 0 when there is none. For a record a user function refused (an error
	// or a panic) in a stage fed by the source directly, it is that record's position.
	Position int64
	// Source names what Position counts in: the file of a line or JSONL source; "" when
	// there is no position.
	Source string
	// Time is the record's event timestamp, when it had one.
	Time int64
}

func (d DeadLetter) String() string {
	if d.Position > 0 && d.Source != "" {
		return fmt.Sprintf("%s: %s:%d: %s", d.Stage, d.Source, d.Position, d.Reason)
	}
	if d.Position > 0 {
		return fmt.Sprintf("%s: line %d: %s", d.Stage, d.Position, d.Reason)
	}
	return fmt.Sprintf("%s: %s (value %v)", d.Stage, d.Reason, d.Value)
}
