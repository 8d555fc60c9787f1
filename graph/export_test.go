package graph

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
