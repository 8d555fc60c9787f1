package graph

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

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

// keepCheckpoints is how many checkpoints a store keeps: the newest three and, behind them,
// what their chains may reach back to.
const keepCheckpoints = 3 + 2*maxDeltaChain

// deltaLog collects what an aggregate key group writes back to its store between
// checkpoints, per checkpoint, until a checkpoint that covers it is complete.
type deltaLog struct {
	current  []byte    // pairs written back since the last snapshot
	segments []segment // sealed by snapshots, newest last; dropped once complete
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

func (l *deltaLog) written(key, value []byte) {
	l.current = appendUvarintBytes(appendUvarintBytes(l.current, key), value)
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
	if l.base == 0 || l.chain >= maxDeltaChain || id == actor.FinalCheckpoint {
		// The final state is kept by every later checkpoint of a finished key group: it
		// must not depend on checkpoints that will be pruned.
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
				return nil, fmt.Errorf("%s: a bad incremental snapshot", identity)
			}
			if depth > keepCheckpoints {
				return nil, fmt.Errorf("%s: a chain of incremental snapshots longer than %d", identity, keepCheckpoints)
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
			return mergeAggSnapshots(full, pairs)
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
	var f checkpointFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode checkpoint %d: %w", id, err)
	}
	cp := actor.Checkpoint(f)
	return &cp, nil
}
