package stream

// UpsertStore is a sink of keyed results written by key: a table, a key-value store. Writing
// a key again with the value it already has changes nothing, so the records a recovery
// replays leave the table as a run without the failure would have: exactly once in effect,
// without transactions (Flink's upsert sinks, Kafka Streams' state stores). A reader may
// see a key go back to an older value and forward again while a replay catches up; use a
// two-phase sink when readers must never see that.
type UpsertStore[K comparable, V any] interface {
	// WriteUpserts applies a batch in order: the last write of a key wins. Calls may come
	// from many instances at once (each with keys of its own key groups).
	WriteUpserts(batch []Upsert[K, V]) error
	// Close flushes and releases the sink.
	Close() error
}

// Upsert sets Key to Value, or deletes Key.
type Upsert[K comparable, V any] struct {
	Key    K
	Value  V
	Delete bool
}

// UpsertSink returns a Sink of keyed records that writes them to u: an insert sets its key, a
// retraction (a changelog's) deletes it, unless an insert of the key follows in the batch.
func UpsertSink[K comparable, V any](u UpsertStore[K, V]) Sink[KV[K, V]] { return &upserts[K, V]{u: u} }

type upserts[K comparable, V any] struct {
	u UpsertStore[K, V]
}

// WriteBatch is called by many instances at once: the batch is its own.
func (s *upserts[K, V]) WriteBatch(recs []Record[KV[K, V]]) error {
	batch := make([]Upsert[K, V], len(recs))
	for i, r := range recs {
		batch[i] = Upsert[K, V]{Key: r.Value.Key, Value: r.Value.Value, Delete: r.Kind == Retract}
	}
	return s.u.WriteUpserts(batch)
}

func (s *upserts[K, V]) Close() error { return s.u.Close() }
