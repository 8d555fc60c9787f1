package operator

import (
	"container/heap"
	"encoding/json"
	"fmt"
)

// Snapshots of the join operators: JSON behind a version byte; record values, keys and table
// values must round-trip through encoding/json (as for the other stages' snapshots).

type intervalSnapshot[K comparable, A, B any] struct {
	Watermark int64                          `json:"watermark"`
	Keys      []intervalKeySnapshot[K, A, B] `json:"keys,omitempty"`
}

type intervalKeySnapshot[K comparable, A, B any] struct {
	Key K           `json:"key"`
	As  []Record[A] `json:"as,omitempty"`
	Bs  []Record[B] `json:"bs,omitempty"`
}

// Snapshot encodes both sides' buffered records and the watermark.
func (op *IntervalJoinOperator[K, A, B, O]) Snapshot() ([]byte, error) {
	s := intervalSnapshot[K, A, B]{Watermark: op.wm}
	for k, st := range op.keys {
		s.Keys = append(s.Keys, intervalKeySnapshot[K, A, B]{Key: k, As: st.as, Bs: st.bs})
	}
	return encodeSnapshot("interval join", s)
}

// Restore loads what Snapshot wrote into an operator that has processed nothing.
func (op *IntervalJoinOperator[K, A, B, O]) Restore(b []byte) error {
	var s intervalSnapshot[K, A, B]
	if err := decodeSnapshotJSON("interval join", b, &s); err != nil {
		return err
	}
	op.Reset()
	op.wm = s.Watermark
	for _, ks := range s.Keys {
		op.keys[ks.Key] = &intervalState[A, B]{as: ks.As, bs: ks.Bs}
		for _, r := range ks.As {
			heap.Push(&op.expiry, expiry[K]{at: r.Time + op.upper, key: ks.Key})
		}
		for _, r := range ks.Bs {
			heap.Push(&op.expiry, expiry[K]{at: r.Time - op.lower, key: ks.Key})
		}
	}
	return nil
}

type tableSnapshot[K comparable, V any] struct {
	Rows []KV[K, V] `json:"rows,omitempty"`
}

// Snapshot encodes the table.
func (op *TableJoinOperator[K, T, V, O]) Snapshot() ([]byte, error) {
	var s tableSnapshot[K, V]
	for k, v := range op.table {
		s.Rows = append(s.Rows, KV[K, V]{Key: k, Value: v})
	}
	return encodeSnapshot("table join", s)
}

// Restore loads what Snapshot wrote.
func (op *TableJoinOperator[K, T, V, O]) Restore(b []byte) error {
	var s tableSnapshot[K, V]
	if err := decodeSnapshotJSON("table join", b, &s); err != nil {
		return err
	}
	op.Reset()
	for _, r := range s.Rows {
		op.table[r.Key] = r.Value
	}
	return nil
}

type temporalSnapshot[K comparable, T, V any] struct {
	Watermark int64                          `json:"watermark"`
	Keys      []temporalKeySnapshot[K, T, V] `json:"keys,omitempty"`
}

type temporalKeySnapshot[K comparable, T, V any] struct {
	Key      K           `json:"key"`
	Versions []Record[V] `json:"versions,omitempty"`
	Pending  []Record[T] `json:"pending,omitempty"`
}

// Snapshot encodes the table versions, the records waiting for the watermark, and the
// watermark.
func (op *TemporalJoinOperator[K, T, V, O]) Snapshot() ([]byte, error) {
	s := temporalSnapshot[K, T, V]{Watermark: op.wm}
	for k, st := range op.keys {
		s.Keys = append(s.Keys, temporalKeySnapshot[K, T, V]{Key: k, Versions: st.versions, Pending: st.pending})
	}
	return encodeSnapshot("temporal join", s)
}

// Restore loads what Snapshot wrote into an operator that has processed nothing.
func (op *TemporalJoinOperator[K, T, V, O]) Restore(b []byte) error {
	var s temporalSnapshot[K, T, V]
	if err := decodeSnapshotJSON("temporal join", b, &s); err != nil {
		return err
	}
	op.Reset()
	op.wm = s.Watermark
	for _, ks := range s.Keys {
		op.keys[ks.Key] = &temporalState[T, V]{versions: ks.Versions, pending: ks.Pending}
		for _, r := range ks.Pending {
			heap.Push(&op.waiting, expiry[K]{at: r.Time, key: ks.Key})
		}
		for _, r := range ks.Versions {
			heap.Push(&op.waiting, expiry[K]{at: r.Time, key: ks.Key})
		}
	}
	return nil
}

func encodeSnapshot(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", what, err)
	}
	return append([]byte{1}, b...), nil
}

func decodeSnapshotJSON(what string, b []byte, v any) error {
	if len(b) == 0 || b[0] != 1 {
		return fmt.Errorf("restore %s: want version 1, got %d bytes", what, len(b))
	}
	if err := json.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("restore %s: %w", what, err)
	}
	return nil
}
