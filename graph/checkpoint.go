package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/persistence"
)

// Checkpoints makes the job take a checkpoint every interval into store (asynchronous
// barrier snapshotting: sources record their positions, stages their state, two-phase sinks
// pre-commit), keep the newest three, and start from the newest intact one it finds there:
// sources rewind, stages reload their state, and two-phase sinks commit what that
// checkpoint completed and drop the rest. A corrupt checkpoint is reported and skipped for
// the one before it.
func Checkpoints(store persistence.CheckpointStore, interval time.Duration) JobOption {
	return func(c *actor.Config) {
		c.Checkpoints = &storeSink{store: store, keep: 3}
		c.CheckpointInterval = interval
	}
}

// storeSink saves complete checkpoints to a persistence.CheckpointStore, one file each.
type storeSink struct {
	store persistence.CheckpointStore
	keep  int
}

// checkpointFile is a checkpoint as stored: JSON (states base64), inside the store's
// versioned, checksummed frame.
type checkpointFile struct {
	ID       int64             `json:"id"`
	States   map[string][]byte `json:"states"`
	Finished map[string]bool   `json:"finished,omitempty"`
}

func (s *storeSink) Save(ctx context.Context, cp actor.Checkpoint) error {
	b, err := json.Marshal(checkpointFile(cp))
	if err != nil {
		return fmt.Errorf("encode checkpoint %d: %w", cp.ID, err)
	}
	if err := s.store.Write(ctx, uint64(cp.ID), b); err != nil {
		return fmt.Errorf("save checkpoint %d: %w", cp.ID, err)
	}
	if err := s.store.Keep(ctx, s.keep); err != nil {
		return fmt.Errorf("prune checkpoints after %d: %w", cp.ID, err)
	}
	return nil
}

// latest returns the newest intact checkpoint (nil when there is none) and the errors of
// the corrupt ones it skipped.
func (s *storeSink) latest(ctx context.Context) (*actor.Checkpoint, []error, error) {
	l, err := persistence.LoadLatestValid(ctx, s.store)
	var skipped []error
	for _, c := range l.Skipped {
		skipped = append(skipped, c)
	}
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, skipped, nil
	}
	if err != nil {
		return nil, skipped, err
	}
	var f checkpointFile
	if err := json.Unmarshal(l.Data, &f); err != nil {
		return nil, skipped, fmt.Errorf("decode checkpoint %d: %w", l.N, err)
	}
	cp := actor.Checkpoint(f)
	return &cp, skipped, nil
}
