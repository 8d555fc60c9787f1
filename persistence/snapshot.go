package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// A SnapshotStore keeps each identity's snapshots, numbered by the journal sequence number
// they cover: the snapshot at seq n holds the state after events 1..n, so recovery loads it
// and replays the journal from n+1. Seq 0 (the state before any event) is allowed.
//
// To load the newest snapshot that is intact, falling back to older ones, use
// LoadLatestValid(ctx, SnapshotsOf(store, identity)).
type SnapshotStore interface {
	// Save stores a snapshot, replacing one saved earlier at the same seq.
	Save(ctx context.Context, identity string, seq uint64, data []byte) error
	// List returns the sequence numbers of identity's snapshots, oldest first.
	List(ctx context.Context, identity string) ([]uint64, error)
	// Load returns one snapshot: ErrNotFound if there is none at seq, *CorruptError if it
	// fails its checks.
	Load(ctx context.Context, identity string, seq uint64) ([]byte, error)
	// Keep deletes all but the newest n (n >= 1) snapshots of identity.
	Keep(ctx context.Context, identity string, n int) error
	// DeleteTo deletes identity's snapshots with seq <= toSeq; MaxSeq deletes them all.
	DeleteTo(ctx context.Context, identity string, toSeq uint64) error
}

// MemorySnapshots is a SnapshotStore in memory. The zero value is not usable; call
// NewMemorySnapshots.
type MemorySnapshots struct {
	// mu guards snaps.
	mu sync.Mutex
	// snaps holds each identity's snapshots sorted by seq.
	snaps map[string][]memorySnapshot
}

type memorySnapshot struct {
	seq  uint64
	data []byte
}

// NewMemorySnapshots returns an empty store.
func NewMemorySnapshots() *MemorySnapshots {
	return &MemorySnapshots{snaps: make(map[string][]memorySnapshot)}
}

var _ SnapshotStore = (*MemorySnapshots)(nil)

// Save implements SnapshotStore.
func (s *MemorySnapshots) Save(ctx context.Context, identity string, seq uint64, data []byte) error {
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	snap := memorySnapshot{seq: seq, data: append([]byte(nil), data...)}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.snaps[identity]
	i := sort.Search(len(l), func(i int) bool { return l[i].seq >= seq })
	if i < len(l) && l[i].seq == seq {
		l[i] = snap
		return nil
	}
	s.snaps[identity] = slices.Insert(l, i, snap)
	return nil
}

// List implements SnapshotStore.
func (s *MemorySnapshots) List(ctx context.Context, identity string) ([]uint64, error) {
	if err := checkIdentity(identity); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seqs := make([]uint64, 0, len(s.snaps[identity]))
	for _, snap := range s.snaps[identity] {
		seqs = append(seqs, snap.seq)
	}
	return seqs, nil
}

// Load implements SnapshotStore. It returns a copy.
func (s *MemorySnapshots) Load(ctx context.Context, identity string, seq uint64) ([]byte, error) {
	if err := checkIdentity(identity); err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.snaps[identity]
	i := sort.Search(len(l), func(i int) bool { return l[i].seq >= seq })
	if i == len(l) || l[i].seq != seq {
		return nil, fmt.Errorf("load snapshot %q seq %d: %w", identity, seq, ErrNotFound)
	}
	return append([]byte(nil), l[i].data...), nil
}

// Keep implements SnapshotStore.
func (s *MemorySnapshots) Keep(ctx context.Context, identity string, n int) error {
	if err := checkKeep(n); err != nil {
		return fmt.Errorf("keep snapshots of %q: %w", identity, err)
	}
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("keep snapshots: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.snaps[identity]; len(l) > n {
		s.snaps[identity] = slices.Clone(l[len(l)-n:])
	}
	return nil
}

// DeleteTo implements SnapshotStore.
func (s *MemorySnapshots) DeleteTo(ctx context.Context, identity string, toSeq uint64) error {
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("delete snapshots: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.snaps[identity]
	i := sort.Search(len(l), func(i int) bool { return l[i].seq > toSeq })
	if i == len(l) {
		delete(s.snaps, identity)
		return nil
	}
	s.snaps[identity] = slices.Clone(l[i:])
	return nil
}

func checkKeep(n int) error {
	if n < 1 {
		return fmt.Errorf("keep %d: must keep at least 1", n)
	}
	return nil
}

// keepNewest deletes all but the newest k of the numbers list returns (oldest first) with
// del: a CheckpointStore's Keep, whatever holds its checkpoints.
func keepNewest(ctx context.Context, k int, list func(context.Context) ([]uint64, error), del func(context.Context, uint64) error) error {
	if err := checkKeep(k); err != nil {
		return fmt.Errorf("keep checkpoints: %w", err)
	}
	ns, err := list(ctx)
	if err != nil {
		return fmt.Errorf("keep checkpoints: %w", err)
	}
	for len(ns) > k {
		if err := del(ctx, ns[0]); err != nil {
			return fmt.Errorf("keep checkpoints: %w", err)
		}
		ns = ns[1:]
	}
	return nil
}

// A Source is a numbered series of stored blobs that LoadLatestValid can read: a
// CheckpointStore's checkpoints, or (through SnapshotsOf) one identity's snapshots.
type Source interface {
	// List returns the numbers of the stored items, oldest first.
	List(ctx context.Context) ([]uint64, error)
	// Load returns one item, or a *CorruptError.
	Load(ctx context.Context, n uint64) ([]byte, error)
}

// SnapshotsOf returns identity's snapshots in store as a Source.
func SnapshotsOf(store SnapshotStore, identity string) Source {
	return identitySnapshots{store: store, identity: identity}
}

type identitySnapshots struct {
	store    SnapshotStore
	identity string
}

func (s identitySnapshots) List(ctx context.Context) ([]uint64, error) {
	return s.store.List(ctx, s.identity)
}

func (s identitySnapshots) Load(ctx context.Context, n uint64) ([]byte, error) {
	return s.store.Load(ctx, s.identity, n)
}

// Loaded is what LoadLatestValid found.
type Loaded struct {
	// N is the snapshot's sequence number or the checkpoint's number.
	N    uint64
	Data []byte
	// Skipped holds the errors of newer items that were corrupt, newest first. Recovery
	// should report them: each is a lost snapshot or checkpoint.
	Skipped []*CorruptError
}

// LoadLatestValid loads the newest item of src that passes its checks, skipping corrupt
// ones (and ones deleted since List). It stops at the first other error (an I/O error, a
// cancelled ctx). If no item is valid, it returns an error wrapping ErrNotFound, with
// Loaded.Skipped still filled in.
func LoadLatestValid(ctx context.Context, src Source) (Loaded, error) {
	ns, err := src.List(ctx)
	if err != nil {
		return Loaded{}, fmt.Errorf("load latest valid: %w", err)
	}
	var skipped []*CorruptError
	for i := len(ns) - 1; i >= 0; i-- {
		data, err := src.Load(ctx, ns[i])
		var corrupt *CorruptError
		switch {
		case err == nil:
			return Loaded{N: ns[i], Data: data, Skipped: skipped}, nil
		case errors.As(err, &corrupt):
			skipped = append(skipped, corrupt)
		case errors.Is(err, ErrNotFound):
			// Deleted (pruned) between List and Load: not corrupt, just gone.
		default:
			return Loaded{Skipped: skipped}, fmt.Errorf("load latest valid: %w", err)
		}
	}
	if len(skipped) > 0 {
		return Loaded{Skipped: skipped}, fmt.Errorf("load latest valid: all %d corrupt: %w", len(skipped), ErrNotFound)
	}
	return Loaded{}, fmt.Errorf("load latest valid: %w", ErrNotFound)
}
