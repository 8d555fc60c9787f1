package graph

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/eddyflow/eddy/actor"
)

// Incremental snapshots of aggregates on the Badger state backend: a checkpoint ships what
// the key group wrote back to Badger since the last complete checkpoint (its changelog),
// not the whole state. Such a snapshot is aggDeltaVersion, the uvarint id of the checkpoint
// it builds on, then key and accumulator pairs as in a full snapshot (a key may come more
// than once: the last wins). Loading a checkpoint flattens each chain back into a full
// snapshot (flattenDeltas), so tasks restore full snapshots only.
const aggDeltaVersion = 3

// maxDeltaChain is how many incremental snapshots may follow a full one in a key group's
// chain: longer chains load more checkpoints at recovery, shorter ones copy the whole
// state more often.
const maxDeltaChain = 8

// keepCheckpoints is how many of the newest checkpoints a store keeps; older ones stay as
// long as a kept one's chain reaches them.
const keepCheckpoints = 3

// maxChainDepth bounds how far flattening follows a chain: far past any chain a key group
// builds, so only a broken store (a cycle) reaches it.
const maxChainDepth = 10_000

// deltaLog collects what an aggregate key group writes back to its store between
// checkpoints, per checkpoint, until a checkpoint that covers it is complete.
type deltaLog struct {
	current  []byte    // pairs written back since the last snapshot
	segments []segment // sealed by snapshots, newest last; dropped once complete
	// size is the bytes current and segments hold; past maxDeltaBytes, or with the job's
	// budget (shared by its key groups: jobDeltaBytes) spent, the log gives up (overflow)
	// and the next snapshot is full.
	size   int
	budget *atomic.Int64
	// base is the last complete checkpoint this key group's snapshots can build on (0:
	// none, so the next snapshot is full), chain the length of its chain, and chains the
	// chain length of each snapshot taken and not yet complete.
	base   int64
	chain  int
	chains map[int64]int
}

type segment struct {
	id   int64
	data []byte
}

// maxDeltaBytes bounds what a key group's log of changes holds in memory: past it (a long
// interval, or checkpoints that keep failing, with many keys written) the log is dropped
// and the next snapshot is full, read from the state store, instead of the heap growing
// with the state.
const (
	maxDeltaBytes = 16 << 20
	jobDeltaBytes = 32 << 20
)

func (l *deltaLog) written(key, value []byte) {
	before := len(l.current)
	l.current = appendUvarintBytes(appendUvarintBytes(l.current, key), value)
	l.resize(l.size + len(l.current) - before)
	if l.size > maxDeltaBytes || l.budget != nil && l.budget.Load() > jobDeltaBytes {
		l.overflow()
	}
}

// resize sets size, and the job's budget by as much.
func (l *deltaLog) resize(size int) {
	if l.budget != nil {
		l.budget.Add(int64(size - l.size))
	}
	l.size = size
}

// overflow drops the log: no snapshot taken so far can be a base any more (the changes
// since it are gone), so the next snapshot is full, and the chain starts again from it.
func (l *deltaLog) overflow() {
	l.current, l.segments = nil, nil
	l.resize(0)
	l.base, l.chain = 0, 0
	clear(l.chains)
}

// snapshot seals what was written since the last snapshot as checkpoint id's, and returns
// the incremental snapshot of id, or ok false when it must be full (no base, or the chain
// is long enough).
func (l *deltaLog) snapshot(id int64) (delta []byte, ok bool) {
	l.segments = append(l.segments, segment{id, l.current})
	l.current = nil
	if l.chains == nil {
		l.chains = map[int64]int{}
	}
	if l.base == 0 || l.chain >= maxDeltaChain {
		l.chains[id] = 0
		return nil, false
	}
	l.chains[id] = l.chain + 1
	out := binary.AppendUvarint([]byte{aggDeltaVersion}, uint64(l.base))
	for _, s := range l.segments {
		out = append(out, s.data...)
	}
	return out, true
}

// complete takes checkpoint id as the base of later snapshots and drops what it covers.
func (l *deltaLog) complete(id int64) {
	chain, ok := l.chains[id]
	if !ok {
		return // not a snapshot of this key group's (taken before a restore, say)
	}
	l.base, l.chain = id, chain
	for k := range l.chains {
		if k <= id {
			delete(l.chains, k)
		}
	}
	l.segments = slices.DeleteFunc(l.segments, func(s segment) bool { return s.id <= id })
	size := len(l.current)
	for _, s := range l.segments {
		size += len(s.data)
	}
	l.resize(size)
}

// deltaBase returns the checkpoint an incremental snapshot builds on.
func deltaBase(st []byte) (int64, []byte, bool) {
	if len(st) == 0 || st[0] != aggDeltaVersion {
		return 0, nil, false
	}
	base, n := binary.Uvarint(st[1:])
	if n <= 0 || base == 0 || base > uint64(actor.FinalCheckpoint) {
		return 0, nil, false
	}
	return int64(base), st[1+n:], true
}

// flattenDeltas replaces every incremental snapshot in cp by the full snapshot its chain
// adds up to, loading the checkpoints of the chain with load.
func flattenDeltas(ctx context.Context, cp *actor.Checkpoint, load func(ctx context.Context, id int64) (*actor.Checkpoint, error)) error {
	loaded := map[int64]*actor.Checkpoint{cp.ID: cp}
	var flatten func(identity string, st []byte, depth int) ([]byte, error)
	flatten = func(identity string, st []byte, depth int) ([]byte, error) {
		if len(st) > 0 && st[0] == aggDeltaVersion {
			base, pairs, ok := deltaBase(st)
			if !ok {
				return nil, fmt.Errorf("%s: %w: an incremental snapshot without a base", identity, errBadCheckpoint)
			}
			if depth > maxChainDepth {
				return nil, fmt.Errorf("%s: a chain of incremental snapshots longer than %d", identity, maxChainDepth)
			}
			b, ok := loaded[base]
			if !ok {
				var err error
				if b, err = load(ctx, base); err != nil {
					return nil, fmt.Errorf("%s: load checkpoint %d, which its snapshot builds on: %w", identity, base, err)
				}
				loaded[base] = b
			}
			full, err := flatten(identity, b.States[identity], depth+1)
			if err != nil {
				return nil, err
			}
			merged, err := mergeAggSnapshots(full, pairs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w: %w", identity, errBadCheckpoint, err)
			}
			return merged, nil
		}
		return st, nil
	}
	for identity, st := range cp.States {
		full, err := flatten(identity, st, 0)
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w", cp.ID, err)
		}
		if full == nil {
			delete(cp.States, identity) // no state: as a full snapshot of nothing says
		} else {
			cp.States[identity] = full
		}
	}
	return nil
}

// mergeAggSnapshots returns the full snapshot of full (a full aggregate snapshot, or nil)
// with the pairs of a delta applied, keys in order.
func mergeAggSnapshots(full, pairs []byte) ([]byte, error) {
	accs := map[string][]byte{}
	add := func(b []byte) error {
		for len(b) > 0 {
			k, rest, err := cutUvarintBytes(b)
			if err != nil {
				return err
			}
			v, rest, err := cutUvarintBytes(rest)
			if err != nil {
				return err
			}
			accs[string(k)], b = v, rest
		}
		return nil
	}
	if len(full) > 0 {
		if full[0] != aggSnapshotVersion {
			return nil, fmt.Errorf("merge snapshots: a base of version %d", full[0])
		}
		if err := add(full[1:]); err != nil {
			return nil, fmt.Errorf("merge snapshots: base: %w", err)
		}
	}
	if err := add(pairs); err != nil {
		return nil, fmt.Errorf("merge snapshots: delta: %w", err)
	}
	if len(accs) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(accs))
	for k := range accs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := []byte{aggSnapshotVersion}
	for _, k := range keys {
		out = appendUvarintBytes(appendUvarintBytes(out, []byte(k)), accs[k])
	}
	return out, nil
}

// loadCheckpoint reads checkpoint id from the sink's store.
func (s *storeSink) loadCheckpoint(ctx context.Context, id int64) (*actor.Checkpoint, error) {
	b, err := s.store.Load(ctx, uint64(id))
	if err != nil {
		return nil, err
	}
	cp, err := decodeCheckpoint(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w: %w", id, errBadCheckpoint, err)
	}
	return &cp, nil
}

// noteBases remembers which checkpoints cp's incremental snapshots build on.
func (s *storeSink) noteBases(cp actor.Checkpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bases == nil {
		s.bases = map[int64][]int64{}
	}
	s.bases[cp.ID] = basesOf(cp)
	if s.refs == nil {
		s.refs = map[int64][]string{}
	}
	s.refs[cp.ID] = runKeysOf(cp)
}

func basesOf(cp actor.Checkpoint) []int64 {
	var out []int64
	for _, st := range cp.States {
		if b, _, ok := deltaBase(st); ok && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// prune deletes the checkpoints that are neither among the newest keepCheckpoints nor
// reached by the chain of one that is (a finished key group's final snapshot, which every
// later checkpoint repeats, may build on an old one).
func (s *storeSink) prune(ctx context.Context) error {
	ids, err := s.store.List(ctx)
	if err != nil {
		return err
	}
	if len(ids) <= keepCheckpoints {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bases == nil {
		s.bases = map[int64][]int64{}
	}
	keep := map[int64]bool{}
	var reach func(id int64, depth int)
	reach = func(id int64, depth int) {
		if keep[id] || depth > maxChainDepth {
			return
		}
		keep[id] = true
		bases, ok := s.bases[id]
		if !ok {
			// Saved by an earlier run: read it once.
			if cp, err := s.loadCheckpoint(ctx, id); err == nil {
				bases = basesOf(*cp)
			}
			s.bases[id] = bases
		}
		for _, b := range bases {
			reach(b, depth+1)
		}
	}
	for _, id := range ids[len(ids)-keepCheckpoints:] {
		reach(int64(id), 0)
	}
	for id := range s.pins {
		reach(id, 0) // a savepoint is being copied from it
	}
	for _, id := range ids {
		if !keep[int64(id)] {
			if err := s.store.Delete(ctx, id); err != nil {
				return err
			}
			delete(s.bases, int64(id))
			delete(s.refs, int64(id))
		}
	}
	return nil
}

// encodeCheckpoint writes a checkpoint as a CheckpointStore holds it (inside the store's versioned, checksummed
// frame): 'E', 'C', version 1, the id, the states by identity and the finished identities,
// with uvarint lengths. Binary: JSON would write every state in base64 and double it in
// its buffer, which large states feel.
func encodeCheckpoint(cp actor.Checkpoint) []byte {
	size := 32
	for id, st := range cp.States {
		size += len(id) + len(st) + 20
	}
	out := make([]byte, 0, size)
	out = append(out, 'E', 'C', 1)
	out = binary.AppendUvarint(out, uint64(cp.ID))
	ids := slices.Sorted(maps.Keys(cp.States))
	out = binary.AppendUvarint(out, uint64(len(ids)))
	for _, id := range ids {
		out = appendUvarintBytes(appendUvarintBytes(out, []byte(id)), cp.States[id])
	}
	fin := slices.Sorted(maps.Keys(cp.Finished))
	out = binary.AppendUvarint(out, uint64(len(fin)))
	for _, id := range fin {
		out = appendUvarintBytes(out, []byte(id))
	}
	return out
}

// errBadCheckpoint says a checkpoint's metadata passed the store's checksum but does not
// decode, or its chain does not add up: recovery skips it for an older one.
var errBadCheckpoint = errors.New("bad checkpoint")

// decodeCheckpoint decodes a checkpoint as a CheckpointStore holds it (its metadata), for
// tools and tests: incremental snapshots stay as they are, not flattened.
func decodeCheckpoint(b []byte) (actor.Checkpoint, error) {
	if len(b) < 3 || b[0] != 'E' || b[1] != 'C' || b[2] != 1 {
		return actor.Checkpoint{}, errors.New("decode checkpoint: not an Eddy checkpoint of version 1")
	}
	b = b[3:]
	id, n := binary.Uvarint(b)
	if n <= 0 || id > uint64(actor.FinalCheckpoint) {
		return actor.Checkpoint{}, errors.New("decode checkpoint: bad id")
	}
	b = b[n:]
	cp := actor.Checkpoint{ID: int64(id), States: map[string][]byte{}, Finished: map[string]bool{}}
	count := func() (int, error) {
		c, n := binary.Uvarint(b)
		if n <= 0 || c > uint64(len(b)) {
			return 0, errors.New("decode checkpoint: bad count")
		}
		b = b[n:]
		return int(c), nil
	}
	states, err := count()
	if err != nil {
		return actor.Checkpoint{}, err
	}
	for range states {
		var idb, st []byte
		if idb, b, err = cutUvarintBytes(b); err == nil {
			st, b, err = cutUvarintBytes(b)
		}
		if err != nil {
			return actor.Checkpoint{}, fmt.Errorf("decode checkpoint: state: %w", err)
		}
		cp.States[string(idb)] = st
	}
	finished, err := count()
	if err != nil {
		return actor.Checkpoint{}, err
	}
	for range finished {
		var idb []byte
		if idb, b, err = cutUvarintBytes(b); err != nil {
			return actor.Checkpoint{}, fmt.Errorf("decode checkpoint: finished: %w", err)
		}
		cp.Finished[string(idb)] = true
	}
	if len(b) > 0 {
		return actor.Checkpoint{}, fmt.Errorf("decode checkpoint: %d bytes left over", len(b))
	}
	return cp, nil
}
