package persistence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
)

// MaxSeq is the largest sequence number. Pass it as Replay's toSeq to replay to the end, or
// to DeleteTo to delete everything.
const MaxSeq = math.MaxUint64

// maxIdentityLen bounds identities so that keys stay small (Badger allows 64 KiB keys).
const maxIdentityLen = 1024

// ErrSeqOrder is returned (wrapped) by Append and AppendBatch when an event's sequence
// number is not greater than the identity's highest.
var ErrSeqOrder = errors.New("sequence number out of order")

// A Journal stores each identity's events in sequence-number order.
//
// Sequence numbers are checked, not assigned: the caller (the actor that owns the identity)
// numbers its events, and an append whose sequence number is not greater than the identity's
// HighestSeq fails with ErrSeqOrder, so an event replayed or resent after a restart is never
// stored twice. Gaps are allowed. Sequence numbers start at 1; 0 means "none".
//
// One identity has one writer at a time (the actor that owns it); different identities may be
// appended to concurrently.
type Journal interface {
	// Append stores one event. It is AppendBatch with one event.
	Append(ctx context.Context, identity string, seq uint64, data []byte) error
	// AppendBatch stores many events, of one identity or several, in one write. Within the
	// batch each identity's sequence numbers must increase. The whole batch is checked
	// before anything is written.
	AppendBatch(ctx context.Context, events []Event) error
	// Replay calls fn for each stored event of identity with fromSeq <= seq <= toSeq, in
	// sequence order, reading as it goes. data is valid only during the call. An error from
	// fn stops the replay and is returned as is.
	Replay(ctx context.Context, identity string, fromSeq, toSeq uint64, fn func(seq uint64, data []byte) error) error
	// DeleteTo deletes identity's events with seq <= toSeq (after a snapshot covers them).
	// HighestSeq is unaffected.
	DeleteTo(ctx context.Context, identity string, toSeq uint64) error
	// DeleteAfter deletes identity's events with seq > afterSeq (in recovery, those after
	// the restored checkpoint's barrier marker). HighestSeq is unaffected, so the events
	// appended next get new sequence numbers, never the discarded ones'.
	DeleteAfter(ctx context.Context, identity string, afterSeq uint64) error
	// HighestSeq returns the highest sequence number ever appended for identity (also
	// after deletions), or 0.
	HighestSeq(ctx context.Context, identity string) (uint64, error)
}

// Event is one journal entry.
type Event struct {
	Identity string
	Seq      uint64
	Data     []byte
}

func checkIdentity(identity string) error {
	switch {
	case identity == "":
		return errors.New("empty identity")
	case len(identity) > maxIdentityLen:
		return fmt.Errorf("identity of %d bytes, the limit is %d", len(identity), maxIdentityLen)
	case strings.IndexByte(identity, 0) >= 0:
		return fmt.Errorf("identity %q contains a NUL byte", identity)
	}
	return nil
}

// checkBatch validates a batch and returns, per identity, its lowest and highest sequence
// numbers in the batch.
func checkBatch(events []Event) (map[string][2]uint64, error) {
	ranges := make(map[string][2]uint64)
	for i, e := range events {
		if err := checkIdentity(e.Identity); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if e.Seq == 0 {
			return nil, fmt.Errorf("event %d of %q: seq 0: %w", i, e.Identity, ErrSeqOrder)
		}
		r, ok := ranges[e.Identity]
		if ok && e.Seq <= r[1] {
			return nil, fmt.Errorf("event %d of %q: seq %d after %d in the same batch: %w", i, e.Identity, e.Seq, r[1], ErrSeqOrder)
		}
		if !ok {
			r[0] = e.Seq
		}
		r[1] = e.Seq
		ranges[e.Identity] = r
	}
	return ranges, nil
}

// MemoryJournal is a Journal in memory, for tests and for stages whose state need not
// survive the process. The zero value is not usable; call NewMemoryJournal.
type MemoryJournal struct {
	// mu guards logs.
	mu   sync.Mutex
	logs map[string]*memoryLog
}

type memoryLog struct {
	// events is replaced, never modified in place below len, so Replay can iterate over a
	// copy of the slice header without holding the lock.
	events  []memoryEvent
	highest uint64
}

type memoryEvent struct {
	seq  uint64
	data []byte
}

// NewMemoryJournal returns an empty journal.
func NewMemoryJournal() *MemoryJournal {
	return &MemoryJournal{logs: make(map[string]*memoryLog)}
}

var _ Journal = (*MemoryJournal)(nil)

// Append implements Journal.
func (j *MemoryJournal) Append(ctx context.Context, identity string, seq uint64, data []byte) error {
	return j.AppendBatch(ctx, []Event{{Identity: identity, Seq: seq, Data: data}})
}

// AppendBatch implements Journal. It is atomic.
func (j *MemoryJournal) AppendBatch(ctx context.Context, events []Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ranges, err := checkBatch(events)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for id, r := range ranges {
		if l := j.logs[id]; l != nil && r[0] <= l.highest {
			return fmt.Errorf("append %q: seq %d, highest is %d: %w", id, r[0], l.highest, ErrSeqOrder)
		}
	}
	for _, e := range events {
		l := j.logs[e.Identity]
		if l == nil {
			l = &memoryLog{}
			j.logs[e.Identity] = l
		}
		l.events = append(l.events, memoryEvent{seq: e.Seq, data: append([]byte(nil), e.Data...)})
		l.highest = e.Seq
	}
	return nil
}

// Replay implements Journal. Callers must not modify data.
func (j *MemoryJournal) Replay(ctx context.Context, identity string, fromSeq, toSeq uint64, fn func(seq uint64, data []byte) error) error {
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	j.mu.Lock()
	var events []memoryEvent
	if l := j.logs[identity]; l != nil {
		events = l.events
	}
	j.mu.Unlock()
	i := sort.Search(len(events), func(i int) bool { return events[i].seq >= fromSeq })
	for n, e := range events[i:] {
		if e.seq > toSeq {
			break
		}
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(e.seq, e.data); err != nil {
			return err
		}
	}
	return nil
}

// DeleteTo implements Journal.
func (j *MemoryJournal) DeleteTo(ctx context.Context, identity string, toSeq uint64) error {
	return j.cut(ctx, identity, toSeq, true)
}

// DeleteAfter implements Journal.
func (j *MemoryJournal) DeleteAfter(ctx context.Context, identity string, afterSeq uint64) error {
	return j.cut(ctx, identity, afterSeq, false)
}

// cut deletes identity's events up to seq (before) or after it. It copies what is kept, so
// that the deleted events can be collected and a Replay in progress keeps its own view.
func (j *MemoryJournal) cut(ctx context.Context, identity string, seq uint64, before bool) error {
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	l := j.logs[identity]
	if l == nil {
		return nil
	}
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].seq > seq })
	if before {
		l.events = append([]memoryEvent(nil), l.events[i:]...)
	} else {
		l.events = append([]memoryEvent(nil), l.events[:i]...)
	}
	return nil
}

// HighestSeq implements Journal.
func (j *MemoryJournal) HighestSeq(ctx context.Context, identity string) (uint64, error) {
	if err := checkIdentity(identity); err != nil {
		return 0, fmt.Errorf("highest seq: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if l := j.logs[identity]; l != nil {
		return l.highest, nil
	}
	return 0, nil
}
