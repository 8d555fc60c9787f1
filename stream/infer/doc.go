// Package infer scores a stream with a model: an asynchronous, batching inference stage
// in the graph DSL, behind one small interface for the model (Model: a batch of float32 rows
// in, a row out for each). Runtimes: ONNX Runtime in process (package onnxrt), a remote model
// server speaking the Open Inference Protocol / KServe v2 (package kserve), and a Go
// function (Func, RowFunc).
//
//	model, err := onnxrt.Open("fraud.onnx")
//	...
//	scored := infer.Stage(txns, model, func(t Txn) []float32 { return t.Features },
//		infer.MaxBatch(64), infer.Concurrency(4), infer.Timeout(time.Second))
//	alerts := scored.Filter(func(s infer.Scored[Txn]) bool { return s.Output[0] > 0.8 })
//
// The stage (Flink's AsyncIO is the model; Triton's dynamic batcher for the batches) runs
// behind an exchange: batches form there (full at the job's BatchSize, or sent after its
// Linger, the max queue delay), are cut into requests of at most MaxBatch rows, and up to
// Concurrency requests per instance are in flight. Failed requests are retried with
// exponential backoff and jitter; each attempt has a deadline (Timeout); a request that
// still fails sends its records to the dead-letter output (or fails the job, under
// graph.OnError(actor.FailJob)). Results keep the input order unless Unordered.
//
// A Versions holds several live versions of a model: records are routed by the hash of a
// key over weights (sticky A/B tests, canaries), a shadow version scores alongside and is
// only compared, and Set swaps a version's model while the job runs: each batch is scored
// by one whole model, and the replaced one is closed when its last batch is done.
//
// Checkpoints: a batch is done, and its results emitted, before the stage takes the next
// one, so a barrier (which follows the batch) never finds a record in flight; with a
// replayable source and a two-phase sink a restore scores and commits every record exactly
// once. See docs/decisions-infer.md.
package infer
