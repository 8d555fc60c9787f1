package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"gocloud.dev/blob"
)

// FencedCheckpoints is a CheckpointStore in an S3-compatible bucket whose checkpoints count
// only once committed under a run's epoch in a BucketFence: a run of a job that another run
// has fenced off (a node paused, then back) cannot complete a checkpoint.
//
//	PREFIX checkpoints/chk-<id>-e<epoch>   checkpoint id's metadata, written by the run of epoch
//	PREFIX savepoints/NAME.savepoint       savepoint NAME (not fenced: a savepoint is taken on purpose)
//
// Write puts the metadata under a key of its own epoch (create-if-absent), then commits the
// fence's record, a Lineage naming it, with the store's compare-and-swap: a newer epoch
// refuses the commit, and the checkpoint does not exist (its object is deleted, and would
// be ignored if that failed). So checkpoints of two runs never mix, even with the same ids:
// List and Load see only what the Lineage holds.
//
// A run starts from the lineage its coordinator read when it claimed the epoch (Claim), and
// every other node of the run is given that record and the checkpoint the coordinator chose
// to restore (Enter): each node's List then ends at that checkpoint, so all nodes restore
// the same one, whatever was committed since.
//
// It is safe for concurrent use.
type FencedCheckpoints struct {
	*BucketCheckpoints // savepoints, and the framing of objects
	fence              *BucketFence

	// mu guards lineage, pin and deleted.
	mu      sync.Mutex
	lineage Lineage
	// pin is the newest checkpoint List shows: the restore point the run was given.
	pin uint64
	// deleted holds checkpoints deleted since the lineage was last committed.
	deleted map[uint64]bool
}

// Lineage is the record a FencedCheckpoints commits under the fence: which run committed
// which checkpoints, and which are kept.
type Lineage struct {
	// Runs lists, oldest first, the runs that committed checkpoints: the run of Epoch
	// committed ids First..Last (those that exist of them). At most maxLineageRuns.
	Runs []LineageRun `json:"runs,omitempty"`
	// Retained lists the checkpoints kept in the store, oldest first.
	Retained []uint64 `json:"retained,omitempty"`
}

// LineageRun is the checkpoints one run committed.
type LineageRun struct {
	Epoch uint64 `json:"epoch"`
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// maxLineageRuns bounds the runs a lineage remembers: a sink's pending output of a run older
// than that counts as never committed.
const maxLineageRuns = 64

// epochOf returns the epoch of the run that committed checkpoint id, 0 if none did.
func (l Lineage) epochOf(id uint64) uint64 {
	for i := len(l.Runs) - 1; i >= 0; i-- {
		if r := l.Runs[i]; r.First <= id && id <= r.Last {
			return r.Epoch
		}
	}
	return 0
}

// with returns the lineage with checkpoint id committed by the run of epoch, which
// restored checkpoint restore (0: none), and without the checkpoints in deleted. The
// run's first commit drops what the restore superseded: checkpoints after restore (of a
// run that a fallback to an older checkpoint abandoned). A run covers every id after its
// restore point up to its last commit: a transaction pre-committed at a checkpoint that
// failed is committed by the next one that completes.
func (l Lineage) with(id, epoch, restore uint64, deleted map[uint64]bool) Lineage {
	var next Lineage
	if n := len(l.Runs); n > 0 && l.Runs[n-1].Epoch == epoch {
		next.Runs = slices.Clone(l.Runs)
		next.Runs[n-1].Last = id
		for _, r := range l.Retained {
			if !deleted[r] {
				next.Retained = append(next.Retained, r)
			}
		}
	} else {
		restore = min(restore, id-1)
		for _, r := range l.Runs {
			if r.First > restore {
				continue
			}
			r.Last = min(r.Last, restore)
			next.Runs = append(next.Runs, r)
		}
		next.Runs = append(next.Runs, LineageRun{Epoch: epoch, First: restore + 1, Last: id})
		for _, r := range l.Retained {
			if r <= restore && !deleted[r] {
				next.Retained = append(next.Retained, r)
			}
		}
	}
	if len(next.Runs) > maxLineageRuns {
		next.Runs = next.Runs[len(next.Runs)-maxLineageRuns:]
	}
	next.Retained = append(next.Retained, id)
	return next
}

// decodeLineage reads a fence record; nil is the empty lineage (no checkpoint yet).
func decodeLineage(record []byte) (Lineage, error) {
	var l Lineage
	if len(record) == 0 {
		return l, nil
	}
	if err := json.Unmarshal(record, &l); err != nil {
		return Lineage{}, fmt.Errorf("decode the checkpoint lineage in the fence record: %w", err)
	}
	return l, nil
}

// NewFencedCheckpoints returns the fenced checkpoint store under prefix (empty, or ending in
// "/") in bucket, committing under fence; where names the bucket in errors.
func NewFencedCheckpoints(bucket *blob.Bucket, prefix, where string, fence *BucketFence) (*FencedCheckpoints, error) {
	inner, err := NewBucketCheckpoints(bucket, prefix, where)
	if err != nil {
		return nil, err
	}
	return &FencedCheckpoints{BucketCheckpoints: inner, fence: fence, pin: math.MaxUint64}, nil
}

// Claim claims a new epoch in the fence for a run this node coordinates (fencing off every
// older run) and returns it with the fence's record, the lineage the run starts from.
// List shows every checkpoint of that lineage until Enter pins one.
func (s *FencedCheckpoints) Claim(ctx context.Context, holder string) (uint64, []byte, error) {
	epoch, err := s.fence.Claim(ctx, holder)
	if err != nil {
		return 0, nil, err
	}
	record := s.fence.Record()
	l, err := decodeLineage(record)
	if err != nil {
		return 0, nil, fmt.Errorf("claim fence: %w", err)
	}
	s.mu.Lock()
	s.lineage, s.pin, s.deleted = l, math.MaxUint64, nil
	s.mu.Unlock()
	return epoch, record, nil
}

// Enter makes this node's part of the run of epoch (claimed by its coordinator) commit
// under it, from record, the lineage the coordinator's claim returned; List ends at
// checkpoint restore (0: none), the one the coordinator chose.
func (s *FencedCheckpoints) Enter(epoch uint64, record []byte, restore int64) error {
	l, err := decodeLineage(record)
	if err != nil {
		return fmt.Errorf("enter epoch %d: %w", epoch, err)
	}
	s.fence.Enter(epoch, record)
	s.mu.Lock()
	s.lineage, s.pin, s.deleted = l, uint64(restore), nil
	s.mu.Unlock()
	return nil
}

// Epoch returns the run's epoch, 0 before Claim or Enter.
func (s *FencedCheckpoints) Epoch() uint64 { return s.fence.Epoch() }

// Fenced returns a channel closed once a commit of this run found a newer epoch.
func (s *FencedCheckpoints) Fenced() <-chan struct{} { return s.fence.Fenced() }

// Newest returns the newest checkpoint committed under the fence, by any run, as the
// fence object holds it now (0: none): math.MaxInt64 (actor.FinalCheckpoint) once the job
// has finished.
func (s *FencedCheckpoints) Newest(ctx context.Context) (int64, error) {
	st, err := s.fence.Current(ctx)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	l, err := decodeLineage(st.Record)
	if err != nil {
		return 0, err
	}
	if len(l.Runs) == 0 {
		return 0, nil
	}
	return int64(min(l.Runs[len(l.Runs)-1].Last, math.MaxInt64)), nil
}

// Check is the fence's Check: an error wrapping ErrFenced when a newer run has claimed.
func (s *FencedCheckpoints) Check(ctx context.Context) error { return s.fence.Check(ctx) }

// Confirm is the fence's Confirm: a write under the run's epoch that the store refuses once
// a newer one is claimed.
func (s *FencedCheckpoints) Confirm(ctx context.Context) error { return s.fence.Confirm(ctx) }

// Committed reports whether checkpoint id was committed by the run of epoch, in the lineage
// this run started from or committed since.
func (s *FencedCheckpoints) Committed(id int64, epoch uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return id > 0 && s.lineage.epochOf(uint64(id)) == epoch
}

func (s *FencedCheckpoints) fencedKey(n, epoch uint64) string {
	return fmt.Sprintf("%scheckpoints/%s%020d-e%020d", s.prefix, checkpointPrefix, n, epoch)
}

// Write implements CheckpointStore: the checkpoint exists once the fence commit names it.
func (s *FencedCheckpoints) Write(ctx context.Context, n uint64, metadata []byte) error {
	epoch := s.fence.Epoch()
	if epoch == 0 {
		return fmt.Errorf("write checkpoint %d: no epoch claimed or entered", n)
	}
	key := s.fencedKey(n, epoch)
	if err := s.writeIfAbsent(ctx, key, metadata); err != nil {
		return fmt.Errorf("write checkpoint %d: %w", n, err)
	}
	s.mu.Lock()
	next := s.lineage.with(n, epoch, s.pin, s.deleted)
	s.mu.Unlock()
	record, err := json.Marshal(next)
	if err == nil {
		err = s.fence.Commit(ctx, record)
	}
	if err != nil {
		// Not committed: the object is nobody's checkpoint (and ignored if this fails).
		_ = s.delete(context.WithoutCancel(ctx), key)
		return fmt.Errorf("write checkpoint %d: %w", n, err)
	}
	s.mu.Lock()
	s.lineage, s.deleted = next, nil
	s.pin = max(s.pin, n) // List shows what the run committed; a pin of MaxUint64 stays
	s.mu.Unlock()
	return nil
}

// List implements CheckpointStore: the checkpoints the lineage keeps, up to the run's
// restore point and those it committed since.
func (s *FencedCheckpoints) List(context.Context) ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ns []uint64
	for _, n := range s.lineage.Retained {
		if n <= s.pin && !s.deleted[n] {
			ns = append(ns, n)
		}
	}
	return ns, nil
}

// Load implements CheckpointStore: the metadata the run that committed n wrote.
func (s *FencedCheckpoints) Load(ctx context.Context, n uint64) ([]byte, error) {
	s.mu.Lock()
	epoch := s.lineage.epochOf(n)
	s.mu.Unlock()
	if epoch == 0 {
		return nil, fmt.Errorf("load checkpoint %d: %s: no run committed it: %w", n, s.where, ErrNotFound)
	}
	data, err := s.readFrame(ctx, s.fencedKey(n, epoch))
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %d: %w", n, err)
	}
	return data, nil
}

// Keep implements CheckpointStore.
func (s *FencedCheckpoints) Keep(ctx context.Context, k int) error {
	return keepNewest(ctx, k, s.List, s.Delete)
}

// Delete implements CheckpointStore. The lineage drops n at the run's next commit.
func (s *FencedCheckpoints) Delete(ctx context.Context, n uint64) error {
	s.mu.Lock()
	epoch := s.lineage.epochOf(n)
	s.mu.Unlock()
	if epoch == 0 {
		return nil
	}
	if err := s.delete(ctx, s.fencedKey(n, epoch)); err != nil {
		return fmt.Errorf("delete checkpoint %d: %w", n, err)
	}
	s.mu.Lock()
	if s.deleted == nil {
		s.deleted = map[uint64]bool{}
	}
	s.deleted[n] = true
	s.mu.Unlock()
	return nil
}

var _ CheckpointStore = (*FencedCheckpoints)(nil)
