package graph

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// Checkpoints makes the job take a checkpoint every interval into store (asynchronous
// barrier snapshotting: sources record their positions, stages their state, two-phase sinks
// pre-commit), keep the newest three, and start from the newest intact one it finds there:
// sources rewind, stages reload their state, and two-phase sinks commit what that
// checkpoint completed and drop the rest. A corrupt checkpoint is reported and skipped for
// the one before it.
func Checkpoints(store persistence.CheckpointStore, interval time.Duration) JobOption {
	return func(c *actor.Config) {
		s := &storeSink{store: store}
		if prev, ok := c.Checkpoints.(*storeSink); ok {
			// FromSavepoint came first: the savepoint still says where the job starts.
			s.savepoint, s.savepointStore = prev.savepoint, prev.savepointStore
		}
		c.Checkpoints, c.CheckpointInterval = s, interval
	}
}

// CheckpointTimeout aborts a checkpoint that has not completed d after its trigger (every
// instance acknowledged and the manifest written): it counts as failed, leaves no manifest,
// and the next one starts on the next interval; what its instances wrote to the store is
// deleted by retention. Default actor.DefaultCheckpointTimeout (10 minutes, as Flink's); a
// full snapshot of a large state to a remote object store must fit in it.
func CheckpointTimeout(d time.Duration) JobOption {
	return func(c *actor.Config) { c.CheckpointTimeout = d }
}

// storeSink saves complete checkpoints to a persistence.CheckpointStore, one file each.
type storeSink struct {
	store persistence.CheckpointStore
	// bases holds, per checkpoint saved or read, the checkpoints its incremental
	// snapshots build on, so that pruning keeps them.
	mu    sync.Mutex
	bases map[int64][]int64
	// refs holds, per checkpoint saved or read, the snapshot objects it refers to, so
	// that retention deletes only objects no manifest refers to.
	refs map[int64][]string
	// pins holds the checkpoints savepoints are being copied from: pruning keeps them.
	pins map[int64]int
	// savepoint, when set, is the savepoint to start from instead of the newest checkpoint.
	savepoint      string
	savepointStore persistence.CheckpointStore
	// fromScratch makes Build start the job from no checkpoint: a restart before the first
	// one completed.
	fromScratch bool
	// deltaBytes is what the key groups' logs of changes (deltaLog) hold, together.
	deltaBytes atomic.Int64
}

func (s *storeSink) Save(ctx context.Context, cp actor.Checkpoint) error {
	b := encodeCheckpoint(cp)
	err := s.store.Write(ctx, uint64(cp.ID), b)
	if errors.Is(err, persistence.ErrExists) && cp.ID == actor.FinalCheckpoint {
		// The final checkpoint of an earlier run (this one started from a savepoint): the
		// new end replaces it.
		if err = s.store.Delete(ctx, uint64(cp.ID)); err == nil {
			err = s.store.Write(ctx, uint64(cp.ID), b)
		}
	}
	if err != nil {
		return fmt.Errorf("save checkpoint %d: %w", cp.ID, err)
	}
	s.noteBases(cp)
	if err := s.prune(ctx); err != nil {
		return fmt.Errorf("prune checkpoints after %d: %w", cp.ID, err)
	}
	if s.objects() != nil {
		ids, err := s.store.List(ctx)
		if err == nil {
			err = s.collect(ctx, ids)
		}
		if err != nil {
			return fmt.Errorf("delete the snapshot objects no checkpoint refers to after %d: %w", cp.ID, err)
		}
	}
	return nil
}

// latest returns the newest intact checkpoint (nil when there is none) and the errors of
// the corrupt ones it skipped.
func (s *storeSink) latest(ctx context.Context) (*actor.Checkpoint, []error, error) {
	ids, err := s.store.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	var skipped []error
	verified := map[string]bool{}
	for i := len(ids) - 1; i >= 0; i-- {
		cp, err := s.loadCheckpoint(ctx, int64(ids[i]))
		if err == nil {
			// A chain is only as good as each checkpoint it reaches.
			err = flattenDeltas(ctx, cp, s.loadCheckpoint)
		}
		if err == nil {
			// And a checkpoint as good as each snapshot object it refers to.
			err = s.verifyObjects(ctx, cp, verified)
		}
		var corrupt *persistence.CorruptError
		switch {
		case err == nil:
			return cp, skipped, nil
		case errors.As(err, &corrupt), errors.Is(err, errBadCheckpoint), errors.Is(err, persistence.ErrNotFound):
			skipped = append(skipped, fmt.Errorf("checkpoint %d: %w", ids[i], err))
		default:
			return nil, skipped, err
		}
	}
	return nil, skipped, nil
}

// Savepoint takes a checkpoint of the running job now and keeps it in the job's checkpoint
// store under name until it is deleted (persistence.CheckpointStore.DeleteSavepoint). The
// job must have been built with Checkpoints.
func (j *Job) Savepoint(ctx context.Context, name string) error {
	sink, ok := j.aj.Load().Config().Checkpoints.(*storeSink)
	if !ok {
		return errors.New("savepoint: the job has no checkpoint store (build it with graph.Checkpoints)")
	}
	cp, err := j.aj.Load().Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("savepoint %q: %w", name, err)
	}
	defer sink.pin(cp.ID)()
	// A savepoint stands on its own: chains of incremental snapshots are flattened, and
	// snapshot objects merged into the savepoint's own, which retention does not touch.
	cp.States = maps.Clone(cp.States)
	if err := flattenDeltas(ctx, &cp, sink.loadCheckpoint); err != nil {
		return fmt.Errorf("savepoint %q: %w", name, err)
	}
	written, err := sink.copyRunsTo(ctx, &cp, name)
	if err == nil {
		err = sink.store.WriteSavepoint(ctx, name, encodeCheckpoint(cp))
	}
	if err != nil {
		for _, k := range written {
			_ = sink.objects().DeleteObject(ctx, k) // the savepoint's own: nothing refers to them
		}
		return fmt.Errorf("savepoint %q: %w", name, err)
	}
	return nil
}

// FromSavepoint makes the job start from the savepoint name in store instead of from the
// newest checkpoint, before or after Checkpoints; alone, it also takes checkpoints into
// store, every second.
func FromSavepoint(store persistence.CheckpointStore, name string) JobOption {
	return func(c *actor.Config) {
		s, ok := c.Checkpoints.(*storeSink)
		if !ok {
			s = &storeSink{store: store}
			c.Checkpoints = s
		}
		s.savepoint, s.savepointStore = name, store
	}
}

// pin keeps checkpoint id (and the objects it refers to) from pruning until the returned
// function is called.
func (s *storeSink) pin(id int64) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins == nil {
		s.pins = map[int64]int{}
	}
	s.pins[id]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pins[id]--; s.pins[id] == 0 {
			delete(s.pins, id)
		}
	}
}

// loadSavepoint reads savepoint name.
func (s *storeSink) loadSavepoint(ctx context.Context) (*actor.Checkpoint, error) {
	b, err := s.savepointStore.LoadSavepoint(ctx, s.savepoint)
	if err != nil {
		return nil, fmt.Errorf("load savepoint %q: %w", s.savepoint, err)
	}
	cp, err := decodeCheckpoint(b)
	if err != nil {
		return nil, fmt.Errorf("decode savepoint %q: %w", s.savepoint, err)
	}
	return &cp, nil
}

// BadgerState keeps the keyed state of aggregate stages (Aggregate, Reduce, Count) in db
// instead of memory, per key group, so that it can be far larger than RAM: each key group
// keeps the keys of its recent batches in memory and writes changed accumulators back after
// each batch. It goes with per-batch or every-update emission and without state TTL (Build
// refuses those combinations). With checkpoints, a checkpoint ships what each key group
// wrote back since the last complete one (a full copy now and then), and a start gives each
// key group a fresh, empty generation of its state before it restores it (docs/decisions.md,
// "Badger state and checkpoints").
func BadgerState(db *persistence.BadgerDB) JobOption {
	return func(c *actor.Config) { c.StateBackend = db }
}

// stateCacheKeys is about how many keys a key group keeps in memory between batches with a
// state backend.
const stateCacheKeys = 4096

// keyCodecOf returns how a key is written in a state backend and in snapshots: the codec
// KeyBy was given, else the built-in one, else JSON.
func keyCodecOf[K comparable](c stream.Codec[K]) stream.Codec[K] {
	if c != nil {
		return c
	}
	if builtin, ok := stream.CodecFor[K](); ok {
		return builtin
	}
	return stream.JSON[K]()
}
