package graph

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// Snapshots that stream (docs/decisions-snapshots.md). When the checkpoint store keeps
// snapshot objects (persistence.SnapshotObjects: DirCheckpoints, BucketCheckpoints), a key
// group of an aggregate on the Badger state backend writes its snapshot straight to the
// store, on whichever node runs it, as a sorted run (persistence.RunWriter) read from Badger
// block by block; the instance acknowledges the checkpoint with a handle to it only (key,
// size, CRC-32C), and the checkpoint's manifest, which the coordinator writes, holds
// handles. An incremental snapshot is a run of the keys written back since the base,
// sorted; the handle of a key group is its whole chain, oldest (full) first, so a manifest
// stands on its own and a restore merges the chain's runs as streams
// (persistence.MergeRuns), never the whole state in memory.
//
// Every other state (sources' positions, process, window and join state, aggregates in
// memory) stays inline in the manifest, as before: it lives in memory already, and is
// small next to state that needs Badger.

// runsRefMagic starts the state of a key group whose snapshot is in snapshot objects: four
// bytes that no other snapshot starts with (theirs start with a version byte below 16),
// then the number of runs and their handles (persistence.AppendRunHandle), oldest first.
const runsRefMagic = "\xe5ESR"

// blobRefMagic starts the state of an instance whose snapshot (any other state, larger
// than inlineLimit) was moved to snapshot objects by offloadTask: one handle follows, as in
// a runs reference. The run holds the snapshot's bytes in chunks of blobChunk.
const blobRefMagic = "\xe5ESB"

// inlineLimit is the largest snapshot a manifest holds inline; larger ones go to the
// store's objects, so that an acknowledgement (one gRPC message on a cluster) stays small.
const inlineLimit = 256 << 10

// blobChunk is the size of the pieces an offloaded snapshot is written in.
const blobChunk = 1 << 20

// encodeRunsRef is the state a manifest keeps of a key group whose snapshot is chain.
func encodeRunsRef(chain []persistence.RunHandle) []byte { return encodeRef(runsRefMagic, chain) }

func encodeRef(magic string, chain []persistence.RunHandle) []byte {
	out := binary.AppendUvarint([]byte(magic), uint64(len(chain)))
	for _, h := range chain {
		out = persistence.AppendRunHandle(out, h)
	}
	return out
}

// decodeRunsRef returns the chain of runs st refers to; ok is false when st is not such a
// reference (an inline snapshot, or an offloaded one).
func decodeRunsRef(st []byte) (chain []persistence.RunHandle, ok bool, err error) {
	if !bytes.HasPrefix(st, []byte(runsRefMagic)) {
		return nil, false, nil
	}
	return decodeChain(st[len(runsRefMagic):])
}

// decodeRef returns the runs st refers to, a key group's chain or an offloaded snapshot
// (blob), or ok false when st is inline.
func decodeRef(st []byte) (chain []persistence.RunHandle, blob, ok bool, err error) {
	if bytes.HasPrefix(st, []byte(blobRefMagic)) {
		chain, ok, err = decodeChain(st[len(blobRefMagic):])
		if err == nil && len(chain) != 1 {
			return nil, true, true, fmt.Errorf("%w: an offloaded snapshot in %d runs", errBadCheckpoint, len(chain))
		}
		return chain, true, ok, err
	}
	chain, ok, err = decodeRunsRef(st)
	return chain, false, ok, err
}

func decodeChain(b []byte) (chain []persistence.RunHandle, ok bool, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n == 0 || n > maxDeltaChain*4 {
		return nil, true, fmt.Errorf("%w: a snapshot reference to %d runs", errBadCheckpoint, n)
	}
	b = b[w:]
	for range n {
		var h persistence.RunHandle
		if h, b, err = persistence.CutRunHandle(b); err != nil {
			return nil, true, fmt.Errorf("%w: %w", errBadCheckpoint, err)
		}
		chain = append(chain, h)
	}
	if len(b) > 0 {
		return nil, true, fmt.Errorf("%w: %d bytes after a snapshot reference", errBadCheckpoint, len(b))
	}
	return chain, true, nil
}

// offloadTask moves an instance's snapshot to the store's snapshot objects when it is
// larger than inlineLimit, and reads it back on restore: the acknowledgement and the
// manifest carry a handle. It wraps every task of a job whose checkpoint store keeps
// objects; key groups that stream their snapshots themselves pass through.
type offloadTask struct {
	actor.Task
	env  *actor.Env
	objs persistence.SnapshotObjects
}

func (t offloadTask) Snapshot(id int64) ([]byte, error) {
	st, err := t.Task.Snapshot(id)
	if err != nil || len(st) <= inlineLimit || id <= 0 {
		return st, err
	}
	if _, _, ok, _ := decodeRef(st); ok {
		return st, nil
	}
	key := persistence.CheckpointObjectKey(uint64(id), objectName(t.env.ID.String()))
	h, err := writeRun(t.env.Context(), t.objs, key, func(add func(k, v []byte) error) error {
		for i := 0; i*blobChunk < len(st); i++ {
			if err := add(binary.BigEndian.AppendUint32(nil, uint32(i)), st[i*blobChunk:min(len(st), (i+1)*blobChunk)]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot checkpoint %d: move %d bytes of state to the store: %w", id, len(st), err)
	}
	return encodeRef(blobRefMagic, []persistence.RunHandle{h}), nil
}

func (t offloadTask) Restore(state []byte) error {
	chain, blob, ok, err := decodeRef(state)
	if !ok || !blob {
		return t.Task.Restore(state)
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var objs persistence.SnapshotObjects
	if sink, isSink := t.env.Config.Checkpoints.(*storeSink); isSink {
		objs = sink.restoreObjects()
	}
	if objs == nil {
		return errors.New("restore: the snapshot is in snapshot objects, and the job's checkpoint store keeps none")
	}
	buf := make([]byte, 0, chain[0].Size)
	err = mergeChain(t.env.Context(), objs, chain, func(_, v []byte) error {
		buf = append(buf, v...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore: read the snapshot: %w", err)
	}
	return t.Task.Restore(buf)
}

func (t offloadTask) Inspect(key any) (any, bool) {
	if in, ok := t.Task.(actor.Inspector); ok {
		return in.Inspect(key)
	}
	return nil, false
}

// objects returns the snapshot objects of the sink's store, nil when it keeps none.
func (s *storeSink) objects() persistence.SnapshotObjects {
	o, _ := s.store.(persistence.SnapshotObjects)
	return o
}

// restoreObjects returns the snapshot objects the job restores from: the savepoint's
// store when it starts from one.
func (s *storeSink) restoreObjects() persistence.SnapshotObjects {
	if s.savepoint != "" && s.savepointStore != nil {
		o, _ := s.savepointStore.(persistence.SnapshotObjects)
		return o
	}
	return s.objects()
}

// objectName is a unique object name for identity's snapshot: its identity, escaped so
// that it is one key segment, and a random suffix, so that two runs (or two nodes that
// both think they own a key group) never write the same object.
func objectName(identity string) string {
	var b strings.Builder
	for _, c := range []byte(identity) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		case c == '/':
			b.WriteByte('~')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	b.WriteByte('.')
	b.WriteString(hex.EncodeToString(r[:]))
	return b.String()
}

// writeRun writes the pairs feed adds as a sorted run to object key of objs.
func writeRun(ctx context.Context, objs persistence.SnapshotObjects, key string, feed func(add func(k, v []byte) error) error) (persistence.RunHandle, error) {
	w, err := objs.CreateObject(ctx, key)
	if err != nil {
		return persistence.RunHandle{}, err
	}
	rw := persistence.NewRunWriter(w)
	if err := feed(rw.Add); err != nil {
		w.Abort()
		return persistence.RunHandle{}, err
	}
	h, err := rw.Finish()
	if err != nil {
		w.Abort()
		return persistence.RunHandle{}, err
	}
	if err := w.Commit(); err != nil {
		return persistence.RunHandle{}, err
	}
	h.Key = key
	return h, nil
}

// mergeChain opens the runs of chain in objs and calls f with the state they add up to,
// key by key, in key order.
func mergeChain(ctx context.Context, objs persistence.SnapshotObjects, chain []persistence.RunHandle, f func(k, v []byte) error) error {
	var readers []*persistence.RunReader
	for i := range chain {
		r, err := objs.OpenObject(ctx, chain[i].Key)
		if err != nil {
			return fmt.Errorf("open snapshot run %s: %w", chain[i].Key, err)
		}
		defer r.Close()
		readers = append(readers, persistence.NewRunReader(r, "snapshot run "+chain[i].Key, &chain[i]))
	}
	return persistence.MergeRuns(readers, f)
}

// runLog is what an aggregate key group on Badger knows of its streamed snapshots: the
// chain of the last complete checkpoint (what the next incremental run builds on), and the
// chain of each snapshot taken and not yet complete.
type runLog struct {
	base  []persistence.RunHandle
	taken map[int64][]persistence.RunHandle
}

func (l *runLog) complete(id int64) {
	chain, ok := l.taken[id]
	if !ok {
		return
	}
	l.base = chain
	for k := range l.taken {
		if k <= id {
			delete(l.taken, k)
		}
	}
}

// snapshotObjectsOf returns the snapshot objects a task writes its snapshots to, nil when
// the job's checkpoint store keeps none.
func snapshotObjectsOf(cfg *actor.Config) persistence.SnapshotObjects {
	if s, ok := cfg.Checkpoints.(*storeSink); ok {
		return s.objects()
	}
	return nil
}

// streamSnapshot writes the key group's snapshot for checkpoint id to the store's snapshot
// objects, incremental when it can be, and returns the reference to its chain; ok is false
// when the store keeps no objects (the snapshot is then inline).
func (t *aggregateTask[K, T, A, R]) streamSnapshot(id int64) (ref []byte, ok bool, err error) {
	objs := snapshotObjectsOf(t.env.Config)
	if objs == nil || t.runs == nil {
		return nil, false, nil
	}
	ctx := t.env.Context()
	key := persistence.CheckpointObjectKey(uint64(id), objectName(t.env.ID.String()))
	var chain []persistence.RunHandle
	delta, incremental := t.deltas.snapshot(id)
	if incremental && len(t.runs.base) > 0 {
		_, pairs, _ := deltaBase(delta)
		sorted, err := sortedPairs(pairs)
		if err != nil {
			return nil, true, fmt.Errorf("snapshot checkpoint %d: the changes since %d: %w", id, t.deltas.base, err)
		}
		h, err := writeRun(ctx, objs, key, func(add func(k, v []byte) error) error {
			for _, p := range sorted {
				if err := add(p.k, p.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, true, fmt.Errorf("snapshot checkpoint %d: %w", id, err)
		}
		chain = append(slices.Clone(t.runs.base), h)
	} else {
		h, err := writeRun(ctx, objs, key, func(add func(k, v []byte) error) error { return t.store.Scan(add) })
		if err != nil {
			return nil, true, fmt.Errorf("snapshot checkpoint %d: %w", id, err)
		}
		chain = []persistence.RunHandle{h}
	}
	if t.runs.taken == nil {
		t.runs.taken = map[int64][]persistence.RunHandle{}
	}
	t.runs.taken[id] = chain
	return encodeRunsRef(chain), true, nil
}

type pair struct{ k, v []byte }

// sortedPairs returns the pairs of an incremental snapshot in key order, each key once
// with its last value.
func sortedPairs(b []byte) ([]pair, error) {
	var out []pair
	for len(b) > 0 {
		k, rest, err := cutUvarintBytes(b)
		if err != nil {
			return nil, err
		}
		v, rest, err := cutUvarintBytes(rest)
		if err != nil {
			return nil, err
		}
		out, b = append(out, pair{k, v}), rest
	}
	sort.SliceStable(out, func(i, j int) bool { return bytes.Compare(out[i].k, out[j].k) < 0 })
	// Of equal keys the last written wins: keep the last of each run of equal keys.
	kept := out[:0]
	for i := range out {
		if i+1 < len(out) && bytes.Equal(out[i].k, out[i+1].k) {
			continue
		}
		kept = append(kept, out[i])
	}
	return kept, nil
}

// restoreRuns loads the state chain adds up to, streaming: into the state backend in
// batches, or into memory.
func (t *aggregateTask[K, T, A, R]) restoreRuns(chain []persistence.RunHandle) error {
	sink, _ := t.env.Config.Checkpoints.(*storeSink)
	var objs persistence.SnapshotObjects
	if sink != nil {
		objs = sink.restoreObjects()
	}
	if objs == nil {
		return errors.New("restore: the snapshot is in snapshot objects, and the job's checkpoint store keeps none")
	}
	var (
		keys, accs [][]byte
		arena      []byte
	)
	flush := func() error {
		err := t.store.PutBatch(keys, accs)
		keys, accs, arena = keys[:0], accs[:0], arena[:0]
		return err
	}
	err := mergeChain(t.env.Context(), objs, chain, func(kb, ab []byte) error {
		if t.store != nil {
			// The run's slices last until its next pair: the batch keeps copies.
			start := len(arena)
			arena = append(append(arena, kb...), ab...)
			keys = append(keys, arena[start:start+len(kb):start+len(kb)])
			accs = append(accs, arena[start+len(kb):len(arena):len(arena)])
			if len(keys) == restoreBatch {
				// arena may have moved as it grew: the batch's slices still point at
				// what they were copied to, which stays until flush returns.
				if err := flush(); err != nil {
					return err
				}
			}
			return nil
		}
		k, err := t.keys.Decode(kb)
		if err != nil {
			return fmt.Errorf("decode aggregate snapshot: key %x: %w", kb, err)
		}
		a, err := stream.DecodeState[A](ab)
		if err != nil {
			return fmt.Errorf("restore key %v: %w", k, err)
		}
		t.op.Put(k, a)
		return nil
	})
	if err == nil && len(keys) > 0 {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if t.runs != nil && t.deltas != nil && t.deltas.base != 0 {
		// Later snapshots build on this chain, as long as the restored checkpoint is in
		// the job's own store (deltas.base is set then).
		t.runs.base, t.deltas.chain = chain, len(chain)-1
	}
	return nil
}

// verifyObjects checks that every run cp refers to is in the store, whole: its size and
// CRC-32C as its handle says, read as a stream (verified holds the keys checked already).
// A lost, cut or damaged run makes the checkpoint corrupt, and recovery falls back to an
// older one; it is checked before the job starts, not while it restores, because two-phase
// sinks commit what the chosen checkpoint completed before the stages restore it.
func (s *storeSink) verifyObjects(ctx context.Context, cp *actor.Checkpoint, verified map[string]bool) error {
	for identity, st := range cp.States {
		chain, _, ok, err := decodeRef(st)
		if !ok {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", identity, err)
		}
		objs := s.objects()
		if objs == nil {
			return fmt.Errorf("%s: %w: its snapshot is in snapshot objects, and the store keeps none", identity, errBadCheckpoint)
		}
		for _, h := range chain {
			if verified[h.Key] {
				continue
			}
			if err := verifyRun(ctx, objs, h); err != nil {
				return fmt.Errorf("%s: %w", identity, err)
			}
			verified[h.Key] = true
		}
	}
	return nil
}

// verifyRun reads run h and checks its size and CRC-32C.
func verifyRun(ctx context.Context, objs persistence.SnapshotObjects, h persistence.RunHandle) error {
	r, err := objs.OpenObject(ctx, h.Key)
	if errors.Is(err, persistence.ErrNotFound) {
		return &persistence.CorruptError{Where: "snapshot run " + h.Key, Reason: "missing from the store"}
	}
	if err != nil {
		return err
	}
	defer r.Close()
	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(sum, r)
	if err != nil {
		return fmt.Errorf("read snapshot run %s: %w", h.Key, err)
	}
	if n != h.Size || sum.Sum32() != h.CRC {
		return &persistence.CorruptError{Where: "snapshot run " + h.Key,
			Reason: fmt.Sprintf("%d bytes with CRC-32C %#08x; the checkpoint recorded %d bytes, %#08x", n, sum.Sum32(), h.Size, h.CRC)}
	}
	return nil
}

// runKeysOf returns the keys of the runs cp refers to.
func runKeysOf(cp actor.Checkpoint) []string {
	var keys []string
	for _, st := range cp.States {
		if chain, _, ok, err := decodeRef(st); ok && err == nil {
			for _, h := range chain {
				keys = append(keys, h.Key)
			}
		}
	}
	return keys
}

// collect deletes the snapshot objects of checkpoints up to newest that no manifest in the
// store refers to any more: those of deleted checkpoints, of failed or aborted ones, and of
// runs that died before their checkpoint completed. Objects of later checkpoints (under way)
// and of savepoints are not touched. refs holds the run keys of each manifest read so far.
func (s *storeSink) collect(ctx context.Context, ids []uint64) error {
	objs := s.objects()
	if objs == nil || len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == nil {
		s.refs = map[int64][]string{}
	}
	referenced := map[string]bool{}
	for _, id := range ids {
		keys, ok := s.refs[int64(id)]
		if !ok {
			cp, err := s.loadCheckpoint(ctx, int64(id))
			var corrupt *persistence.CorruptError
			switch {
			case errors.As(err, &corrupt), errors.Is(err, errBadCheckpoint), errors.Is(err, persistence.ErrNotFound):
				// Damaged or gone: it restores nothing, and keeps nothing either.
				s.refs[int64(id)] = nil
				continue
			case err != nil:
				// Unread (an I/O error): what it refers to is unknown, so nothing is
				// deleted this time; the next checkpoint tries again.
				return nil
			}
			keys = runKeysOf(*cp)
			s.refs[int64(id)] = keys
		}
		for _, k := range keys {
			referenced[k] = true
		}
	}
	newest := ids[len(ids)-1]
	var unreferenced []string
	err := objs.ListObjects(ctx, "chk-", func(key string, _ int64) error {
		if n, ok := persistence.ObjectCheckpoint(key); ok && n <= newest && !referenced[key] {
			unreferenced = append(unreferenced, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("collect snapshot objects: %w", err)
	}
	for _, k := range unreferenced {
		if err := objs.DeleteObject(ctx, k); err != nil {
			return fmt.Errorf("collect snapshot objects: %w", err)
		}
	}
	return nil
}

// copyRunsTo makes cp stand on its own as savepoint name: each key group's chain is merged
// into one run of the savepoint's, as a stream. It returns the objects written, for
// cleaning up when the savepoint is not written after all.
func (s *storeSink) copyRunsTo(ctx context.Context, cp *actor.Checkpoint, name string) ([]string, error) {
	var written []string
	for identity, st := range cp.States {
		chain, blob, ok, err := decodeRef(st)
		if !ok {
			continue
		}
		if err != nil {
			return written, fmt.Errorf("%s: %w", identity, err)
		}
		objs := s.objects()
		key := persistence.SavepointObjectKey(name, objectName(identity))
		h, err := writeRun(ctx, objs, key, func(add func(k, v []byte) error) error {
			return mergeChain(ctx, objs, chain, add)
		})
		if err != nil {
			return written, fmt.Errorf("%s: copy its snapshot: %w", identity, err)
		}
		written = append(written, key)
		magic := runsRefMagic
		if blob {
			magic = blobRefMagic
		}
		cp.States[identity] = encodeRef(magic, []persistence.RunHandle{h})
	}
	return written, nil
}
