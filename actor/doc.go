// Package actor runs Eddy's physical plans on Proto.Actor
// (github.com/asynkron/protoactor-go).
//
// A plan is a set of vertices, each a chain of fused stages, and the channels between them.
// Every vertex runs as one actor per instance: a source runs one actor per split
// (identity job/stage/split), a keyed stage one actor per key group (job/stage/keyGroup),
// a stateless stage after a fan-in one per unit of parallelism. Where an identity runs is
// asked of a Placement: Local here; with a ClusterRun (the cluster package makes one) a run
// spans nodes, each spawning the identities placed on it. Batches then cross nodes over
// Proto.Actor remote, encoded with the edge's RecordsCodec, under the same credits; one
// node coordinates checkpoints and the end of the job (see wire.go for what travels).
//
// Records move between actors in batches: a sender buffers records per destination and sends
// a batch when it holds BatchSize records, when Linger has passed, and at the end of input.
// Every channel runs credit-based flow control: a receiver grants Credits batches to each
// sender, a sender never has more in flight, and a receiver grants one more only when it has
// processed a batch. A sender without credit stops taking input (a source stops reading), so
// no mailbox and no buffer grows without bound; the time spent so is measured per stage.
// That holds however much an operator emits at once — a FlatMap's fan-out, a window's
// firings at one watermark, a join's matches, timers, the results at the end of input: an
// instance's work runs as a coroutine that waits, in the middle, for credit, and no batch
// holds more than BatchSize records. Barriers, watermarks and the end of stream wait behind
// that output, so a checkpoint never cuts an emission in two (see emission.go).
//
// The package has two drivers for the same instance logic: Run, on Proto.Actor, and
// SyncDriver, a deterministic single-goroutine driver with a manual clock that the testing
// kit (actor/actortest) uses.
//
// Most users never see this package: graph.Build compiles a typed graph into a Plan.
package actor
