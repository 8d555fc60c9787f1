package operator

import (
	"container/heap"
	"encoding/json"
	"fmt"
)

// windowSnapshot is a WindowOperator's state as Snapshot writes it: JSON behind a version
// byte, so the key, value and accumulator types must round-trip through encoding/json.
type windowSnapshot[K comparable, T, A, R any] struct {
	Watermark      int64                          `json:"watermark"`
	WindowAssigner []windowStateSnapshot[K, A, R] `json:"windows"`
	Buffered       []bufferedSnapshot[K, T]       `json:"buffered,omitempty"`
}

type windowStateSnapshot[K comparable, A, R any] struct {
	Key    K                   `json:"key"`
	Start  int64               `json:"start"`
	End    int64               `json:"end"`
	Acc    []byte              `json:"acc"` // EncodeState
	Fired  bool                `json:"fired,omitempty"`
	OnTime bool                `json:"on_time,omitempty"`
	N      int64               `json:"n,omitempty"`
	Dirty  bool                `json:"dirty,omitempty"`
	Last   *WindowResult[K, R] `json:"last,omitempty"`
}

type bufferedSnapshot[K comparable, T any] struct {
	Key     K           `json:"key"`
	Records []Record[T] `json:"records"`
}

// Snapshot encodes the operator's state: its watermark, every live window with its
// accumulator and firing state, and the records sliding windows keep. Processing-time
// firings are not kept: Restore schedules them again from now.
func (op *WindowOperator[K, T, A, R]) Snapshot() ([]byte, error) {
	s := windowSnapshot[K, T, A, R]{Watermark: op.wm}
	for _, ws := range op.due.items {
		acc, err := EncodeState(ws.acc)
		if err != nil {
			return nil, fmt.Errorf("snapshot window %v of key %v: %w", ws.w, ws.key, err)
		}
		e := windowStateSnapshot[K, A, R]{Key: ws.key, Start: ws.w.Start, End: ws.w.End, Acc: acc,
			Fired: ws.fired, OnTime: ws.onTime, N: ws.n, Dirty: ws.dirty}
		if last, ok := ws.last.(WindowResult[K, R]); ok {
			e.Last = &last
		}
		s.WindowAssigner = append(s.WindowAssigner, e)
	}
	for k, recs := range op.buffered {
		s.Buffered = append(s.Buffered, bufferedSnapshot[K, T]{Key: k, Records: recs})
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("snapshot windows: %w", err)
	}
	return append([]byte{1}, b...), nil
}

// Restore loads what Snapshot wrote into an operator that has processed nothing, with
// processing time now (Unix ms) for the firings it schedules again.
func (op *WindowOperator[K, T, A, R]) Restore(b []byte, now int64) error {
	if len(b) == 0 || b[0] != 1 {
		return fmt.Errorf("restore windows: want version 1, got %d bytes", len(b))
	}
	var s windowSnapshot[K, T, A, R]
	if err := json.Unmarshal(b[1:], &s); err != nil {
		return fmt.Errorf("restore windows: %w", err)
	}
	op.Reset()
	op.wm, op.now = s.Watermark, now
	for _, e := range s.WindowAssigner {
		acc, err := DecodeState[A](e.Acc)
		if err != nil {
			return fmt.Errorf("restore window [%d,%d) of key %v: %w", e.Start, e.End, e.Key, err)
		}
		op.seq++
		ws := &windowState[K, A]{key: e.Key, w: TimeWindow{Start: e.Start, End: e.End}, acc: acc, fired: e.Fired, onTime: e.OnTime,
			n: e.N, dirty: e.Dirty, seq: op.seq}
		if e.Last != nil {
			ws.last = *e.Last
		}
		op.keys[e.Key] = append(op.keys[e.Key], ws)
		heap.Push(&op.due, ws)
		switch t := op.opts.Trigger; {
		case t.IsProcessingTime():
			ws.earlyAt = ws.w.End
		case t.EarlyFirings() > 0 && !ws.onTime:
			ws.earlyAt = now + t.EarlyFirings().Milliseconds()
		}
		if ws.earlyAt != 0 {
			heap.Push(&op.timers, procTimer[K, A]{at: ws.earlyAt, ws: ws})
		}
	}
	if len(s.Buffered) > 0 {
		op.buffered = map[K][]Record[T]{}
		for _, bs := range s.Buffered {
			op.buffered[bs.Key] = bs.Records
			for _, r := range bs.Records {
				heap.Push(&op.expiry, expiry[K]{at: r.Time + op.windowSize + 1 + op.lateness, key: bs.Key})
			}
		}
	}
	return nil
}
