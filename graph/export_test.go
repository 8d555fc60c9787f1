package graph

import "github.com/eddyflow/eddy/persistence"

// The checkpoint file format, for the tests outside the package that read checkpoints back.
var (
	EncodeCheckpoint = encodeCheckpoint
	DecodeCheckpoint = decodeCheckpoint
)

// RunsChain returns how many runs a key group's state in a manifest refers to: 0 when it
// is inline, 1 for a full snapshot in snapshot objects, more for an incremental one.
func RunsChain(st []byte) int {
	chain, _, _ := decodeRunsRef(st)
	return len(chain)
}

// RunHandles returns the runs a key group's state in a manifest refers to (nil: inline).
func RunHandles(st []byte) []persistence.RunHandle {
	chain, _, _ := decodeRunsRef(st)
	return chain
}
