package graph

// The checkpoint file format, for the tests outside the package that read checkpoints back.
var (
	EncodeCheckpoint = encodeCheckpoint
	DecodeCheckpoint = decodeCheckpoint
)
