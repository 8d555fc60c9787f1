package operator

import (
	"encoding/json"
	"fmt"
	"time"
)

// processSnapshot is a ProcessOperator's state as Snapshot writes it: JSON behind a version
// byte; each state value is encoded with EncodeState by its dynamic type and decoded on its
// first read after Restore, with the type of the handle that reads it.
type processSnapshot[K comparable] struct {
	Watermark   int64              `json:"watermark"`
	Keys        []keySnapshot[K]   `json:"keys,omitempty"`
	Timers      []timerSnapshot[K] `json:"timers,omitempty"`
	EventTimers []timerSnapshot[K] `json:"event_timers,omitempty"`
}

type keySnapshot[K comparable] struct {
	Key    K                 `json:"key"`
	States map[string][]byte `json:"states"`
}

type timerSnapshot[K comparable] struct {
	Key K     `json:"key"`
	At  int64 `json:"at"`
}

// Snapshot encodes the operator's keyed state, its timers and its watermark. A state TTL's
// clocks are not kept: after a restore they start again.
func (op *ProcessOperator[K, I, O]) Snapshot() ([]byte, error) {
	s := processSnapshot[K]{Watermark: op.ctx.wm}
	for k, slots := range op.state.keys {
		ks := keySnapshot[K]{Key: k, States: make(map[string][]byte, len(slots))}
		for name, v := range slots {
			b, err := encodeSlot(v)
			if err != nil {
				return nil, fmt.Errorf("snapshot state %q of key %v: %w", name, k, err)
			}
			ks.States[name] = b
		}
		s.Keys = append(s.Keys, ks)
	}
	for _, t := range op.timers.h {
		s.Timers = append(s.Timers, timerSnapshot[K]{Key: t.key, At: t.at})
	}
	for _, t := range op.eventTimers.h {
		s.EventTimers = append(s.EventTimers, timerSnapshot[K]{Key: t.key, At: t.at})
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("snapshot process state: %w", err)
	}
	return append([]byte{1}, b...), nil
}

func encodeSlot(v any) ([]byte, error) {
	if raw, ok := v.(EncodedState); ok {
		return raw, nil // restored and not read since: as it came
	}
	return EncodeState(v)
}

// Restore loads what Snapshot wrote into an operator that has processed nothing.
func (op *ProcessOperator[K, I, O]) Restore(b []byte) error {
	if len(b) == 0 || b[0] != 1 {
		return fmt.Errorf("restore process state: want version 1, got %d bytes", len(b))
	}
	var s processSnapshot[K]
	if err := json.Unmarshal(b[1:], &s); err != nil {
		return fmt.Errorf("restore process state: %w", err)
	}
	op.Reset()
	op.ctx.wm = s.Watermark
	for _, ks := range s.Keys {
		for name, v := range ks.States {
			op.state.set(ks.Key, name, EncodedState(v))
		}
	}
	for _, t := range s.Timers {
		op.timers.Register(t.Key, time.Unix(0, t.At))
	}
	for _, t := range s.EventTimers {
		op.eventTimers.RegisterAt(t.Key, t.At)
	}
	return nil
}
