package stream

// Sink receives a stage's final records. The runtime calls WriteBatch from the actors of the
// stage that feeds it, possibly at once from several, so a sink must be safe for concurrent
// use; each call hands a batch of records (up to a batch size) to amortise locking.
type Sink[T any] interface {
	// WriteBatch writes recs. The sink must not keep recs after it returns. An error goes to
	// the dead-letter output with the records, and the job goes on (or fails, by policy).
	WriteBatch(recs []Record[T]) error
	// Close flushes and releases the sink. The runtime calls it once, after the last
	// WriteBatch of a job that ends (drained or cancelled).
	Close() error
}
