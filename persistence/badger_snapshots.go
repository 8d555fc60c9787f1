package persistence

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// BadgerSnapshots is the SnapshotStore of a BadgerDB. A snapshot is one Badger value, so
// it is bounded by Badger's value size limit (1 GiB by default); state larger than that
// belongs in a Badger state backend, not in a snapshot blob.
type BadgerSnapshots struct {
	d *BadgerDB
}

var _ SnapshotStore = (*BadgerSnapshots)(nil)

func (s *BadgerSnapshots) where(identity string, seq uint64) string {
	return fmt.Sprintf("snapshot %q seq %d in badger %s", identity, seq, s.d.dir)
}

// Save implements SnapshotStore.
func (s *BadgerSnapshots) Save(ctx context.Context, identity string, seq uint64, data []byte) error {
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.d.begin(); err != nil {
		return fmt.Errorf("save snapshot %q: %w", identity, err)
	}
	defer s.d.end()
	v := appendFrame(make([]byte, 0, frameHeaderSize+len(data)), data)
	err := s.d.db.Update(func(txn *badger.Txn) error {
		return txn.Set(seqKey(identity, kindSnapshot, seq), v)
	})
	if err != nil {
		return fmt.Errorf("save %s: %w", s.where(identity, seq), err)
	}
	return nil
}

// List implements SnapshotStore.
func (s *BadgerSnapshots) List(ctx context.Context, identity string) ([]uint64, error) {
	if err := checkIdentity(identity); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	if err := s.d.begin(); err != nil {
		return nil, fmt.Errorf("list snapshots %q: %w", identity, err)
	}
	defer s.d.end()
	seqs, err := s.d.seqs(ctx, kindPrefix(identity, kindSnapshot), MaxSeq)
	if err != nil {
		return nil, fmt.Errorf("list snapshots %q: %w", identity, err)
	}
	return seqs, nil
}

// Load implements SnapshotStore. It returns a copy.
func (s *BadgerSnapshots) Load(ctx context.Context, identity string, seq uint64) ([]byte, error) {
	if err := checkIdentity(identity); err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	if err := s.d.begin(); err != nil {
		return nil, fmt.Errorf("load snapshot %q: %w", identity, err)
	}
	defer s.d.end()
	var data []byte
	err := s.d.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(seqKey(identity, kindSnapshot, seq))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if data, err = decodeFrame(v); err != nil {
			return &CorruptError{Where: s.where(identity, seq), Reason: err.Error()}
		}
		return nil
	})
	var corrupt *CorruptError
	switch {
	case err == nil:
		return data, nil
	case errors.As(err, &corrupt):
		return nil, err
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, fmt.Errorf("load %s: %w", s.where(identity, seq), ErrNotFound)
	default:
		return nil, fmt.Errorf("load %s: %w", s.where(identity, seq), err)
	}
}

// Keep implements SnapshotStore.
func (s *BadgerSnapshots) Keep(ctx context.Context, identity string, n int) error {
	if err := checkKeep(n); err != nil {
		return fmt.Errorf("keep snapshots of %q: %w", identity, err)
	}
	seqs, err := s.List(ctx, identity)
	if err != nil {
		return fmt.Errorf("keep snapshots: %w", err)
	}
	if len(seqs) <= n {
		return nil
	}
	return s.DeleteTo(ctx, identity, seqs[len(seqs)-n-1])
}

// DeleteTo implements SnapshotStore.
func (s *BadgerSnapshots) DeleteTo(ctx context.Context, identity string, toSeq uint64) error {
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("delete snapshots: %w", err)
	}
	if err := s.d.begin(); err != nil {
		return fmt.Errorf("delete snapshots %q: %w", identity, err)
	}
	defer s.d.end()
	if err := s.d.deleteKeys(ctx, kindPrefix(identity, kindSnapshot), 0, toSeq); err != nil {
		return fmt.Errorf("delete snapshots %q through %d: %w", identity, toSeq, err)
	}
	return nil
}
