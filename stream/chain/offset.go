package chain

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/eddyflow/eddy/stream"
)

// offsetVersion is the first byte of every offset: the encoding that follows it. Version 1
// is JSON of offsetState.
const offsetVersion = 1

// offsetState is what a checkpoint keeps of a split.
type offsetState struct {
	From  uint64   `json:"from"`
	Next  uint64   `json:"next"`
	Ring  []block  `json:"ring,omitempty"`
	Queue []queued `json:"queue,omitempty"`
}

// Offset returns the split's state after the last record it handed on: the next block, the
// blocks it may still retract (with their logs) and the records it read but has not handed
// on yet.
func (s *split) Offset() ([]byte, error) {
	b, err := json.Marshal(offsetState{From: s.cfg.FromBlock, Next: s.next, Ring: s.ring, Queue: s.queue})
	if err != nil {
		return nil, fmt.Errorf("chain: encode offset: %w", err)
	}
	return append([]byte{offsetVersion}, b...), nil
}

// Seek restores the state Offset returned. The next Read first checks that the last block
// in it is still canonical, and retracts what a re-org changed while the job was down.
func (s *split) Seek(off []byte) error {
	st, err := decodeOffset(off, s.cfg)
	if err != nil {
		return fmt.Errorf("chain: seek: %w", err)
	}
	s.next, s.ring, s.queue = st.Next, st.Ring, st.Queue
	s.topChecked = false
	return nil
}

// decodeOffset decodes and checks an offset: a bad or foreign one is an error, never a
// panic or a state the split would trip on.
func decodeOffset(off []byte, cfg Config) (offsetState, error) {
	var st offsetState
	switch {
	case len(off) == 0:
		return st, errors.New("empty offset")
	case off[0] != offsetVersion:
		return st, fmt.Errorf("offset version %d, want %d", off[0], offsetVersion)
	}
	if err := json.Unmarshal(off[1:], &st); err != nil {
		return st, fmt.Errorf("decode offset: %w", err)
	}
	if st.From != cfg.FromBlock {
		return st, fmt.Errorf("offset of a source that starts at block %d, this one starts at %d", st.From, cfg.FromBlock)
	}
	if len(st.Ring) > cfg.MaxReorgDepth {
		return st, fmt.Errorf("offset remembers %d blocks, more than MaxReorgDepth %d", len(st.Ring), cfg.MaxReorgDepth)
	}
	if st.Next < st.From {
		return st, fmt.Errorf("offset's next block %d is before the first block %d", st.Next, st.From)
	}
	for i, b := range st.Ring {
		if b.Number < st.From {
			return st, fmt.Errorf("offset's block %d is before the first block %d", b.Number, st.From)
		}
		if i > 0 && (b.Number != st.Ring[i-1].Number+1 || b.Parent != st.Ring[i-1].Hash) {
			return st, fmt.Errorf("offset's block %d does not follow block %d", b.Number, st.Ring[i-1].Number)
		}
		for _, l := range b.Logs {
			if l.BlockHash != b.Hash || l.BlockNumber != b.Number {
				return st, fmt.Errorf("offset's block %d holds a log of block %d", b.Number, l.BlockNumber)
			}
		}
	}
	if n := len(st.Ring); n > 0 && st.Next != st.Ring[n-1].Number+1 {
		return st, fmt.Errorf("offset's next block %d does not follow its last block %d", st.Next, st.Ring[n-1].Number)
	}
	for _, q := range st.Queue {
		switch {
		case q.IsMark && q.Log != nil:
			return st, errors.New("offset's queue holds a watermark with a log")
		case !q.IsMark && q.Log == nil:
			return st, errors.New("offset's queue holds a record without a log")
		case q.Kind != stream.Insert && q.Kind != stream.Retract:
			return st, fmt.Errorf("offset's queue holds a record of kind %d", q.Kind)
		}
	}
	return st, nil
}
