// Package bucketsink is a two-phase commit sink that writes JSON lines into an object-store
// bucket (gocloud.dev/blob: S3 and S3-compatible servers), with its commits fenced by the
// run's epoch, so that the nodes of a cluster need no shared directory for their output and
// a run that another has fenced off (a paused node, back) commits nothing.
//
//	fence := persistence.NewBucketFence(bucket, "jobs/clicks/fence", url)
//	store, _ := persistence.NewFencedCheckpoints(bucket, "jobs/clicks/", url, fence)
//	sink := bucketsink.JSONL[Click](bucket, "jobs/clicks/out/", url, store)
//	graph.From(g, src).To(sink)
//	job, _ := g.Build(graph.Checkpoints(store, time.Second))
//
// The run's epoch comes from the store (its Claim or Enter, which cluster.Node calls
// before each run); committed output is the objects PREFIX part-c<checkpoint>-i<instance>.jsonl.
package bucketsink
