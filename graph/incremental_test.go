package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/persistence"
)

func pairs(kv ...string) []byte {
	var out []byte
	for i := 0; i < len(kv); i += 2 {
		out = appendUvarintBytes(appendUvarintBytes(out, []byte(kv[i])), []byte(kv[i+1]))
	}
	return out
}

func full(kv ...string) []byte { return append([]byte{aggSnapshotVersion}, pairs(kv...)...) }

// A key group's snapshots: full without a base, then the writes since the last complete
// checkpoint (failed ones included), full again when the chain is long or at the end.
func TestDeltaLog(t *testing.T) {
	var l deltaLog
	l.written([]byte("a"), []byte("1"))
	if _, ok := l.snapshot(1); ok {
		t.Fatal("the first snapshot is incremental; it has no base")
	}
	l.complete(1)
	l.written([]byte("b"), []byte("1"))
	d2, ok := l.snapshot(2)
	if !ok {
		t.Fatal("snapshot 2 is full; checkpoint 1 is its base")
	}
	// Checkpoint 2 never completes: snapshot 3 carries 2's writes too, on base 1.
	l.written([]byte("a"), []byte("2"))
	d3, ok := l.snapshot(3)
	if base, rest, _ := deltaBase(d3); !ok || base != 1 || !bytes.Equal(rest, pairs("b", "1", "a", "2")) {
		t.Fatalf("snapshot 3: base %d, pairs %q; want base 1 and both writes", base, rest)
	}
	if base, _, _ := deltaBase(d2); base != 1 {
		t.Fatalf("snapshot 2's base is %d, want 1", base)
	}
	l.complete(3)
	if d, ok := l.snapshot(4); !ok || !bytes.Equal(d, []byte{aggDeltaVersion, 3}) {
		t.Fatalf("snapshot 4 with no writes = %v, %v; want an empty delta on base 3 (not nothing)", d, ok)
	}
	// Deltas on deltas, each checkpoint completing: a full snapshot comes before the chain
	// passes maxDeltaChain.
	fullAt := int64(0)
	for id := int64(4); id < 4+2*maxDeltaChain && fullAt == 0; id++ {
		l.complete(id)
		if _, ok := l.snapshot(id + 1); !ok {
			fullAt = id + 1
		}
		if l.chains[id+1] > maxDeltaChain {
			t.Fatalf("snapshot %d has a chain of %d", id+1, l.chains[id+1])
		}
	}
	if fullAt == 0 || fullAt > 4+maxDeltaChain {
		t.Errorf("the first full snapshot after 3 came at %d, want by %d", fullAt, 4+maxDeltaChain)
	}
	// The final snapshot is incremental too: pruning keeps what it builds on.
	l.complete(fullAt)
	if d, ok := l.snapshot(actor.FinalCheckpoint); !ok {
		t.Error("the final snapshot is full though it has a base")
	} else if base, _, _ := deltaBase(d); base != fullAt {
		t.Errorf("the final snapshot builds on %d, want %d", base, fullAt)
	}
}

// Loading a checkpoint flattens each key group's chain into the full snapshot it adds up
// to; a missing base is an error that names it.
func TestFlattenDeltas(t *testing.T) {
	delta := func(base byte, kv ...string) []byte { return append([]byte{aggDeltaVersion, base}, pairs(kv...)...) }
	store := map[int64]*actor.Checkpoint{
		1: {ID: 1, States: map[string][]byte{"j/c/0": full("a", "1", "b", "1"), "j/c/1": full("x", "1")}},
		2: {ID: 2, States: map[string][]byte{"j/c/0": delta(1, "a", "2"), "j/c/1": delta(1)}},
	}
	load := func(_ context.Context, id int64) (*actor.Checkpoint, error) {
		if cp, ok := store[id]; ok {
			return cp, nil
		}
		return nil, errors.New("not found")
	}
	cp := &actor.Checkpoint{ID: 3, States: map[string][]byte{
		"j/c/0":   delta(2, "c", "1", "a", "3"), // on 2, on 1
		"j/c/1":   delta(2, "y", "1"),
		"j/c/2":   delta(1), // a key group with no state at its base
		"j/src/0": {1, '{', '}'},
	}}
	if err := flattenDeltas(context.Background(), cp, load); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"j/c/0":   full("a", "3", "b", "1", "c", "1"),
		"j/c/1":   full("x", "1", "y", "1"),
		"j/src/0": {1, '{', '}'},
	}
	if len(cp.States) != len(want) {
		t.Errorf("states %q, want %q", cp.States, want)
	}
	for id, w := range want {
		if !bytes.Equal(cp.States[id], w) {
			t.Errorf("%s: %q, want %q", id, cp.States[id], w)
		}
	}
	broken := &actor.Checkpoint{ID: 9, States: map[string][]byte{"j/c/0": delta(7, "a", "1")}}
	if err := flattenDeltas(context.Background(), broken, load); err == nil {
		t.Error("a chain whose base is gone was flattened")
	}
}

// Pruning keeps the newest checkpoints and every checkpoint their chains reach (a finished
// key group repeats its final snapshot, built on an old checkpoint, in every later one).
func TestPruneKeepsChains(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := persistence.OpenDirCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	sink := &storeSink{store: store}
	final := append([]byte{aggDeltaVersion, 1}, pairs("k", "9")...)
	for id := int64(1); id <= 10; id++ {
		states := map[string][]byte{"j/c/1": full("x", string(rune('0'+id%10)))}
		if id == 1 {
			states["j/c/0"] = full("k", "1")
		} else {
			states["j/c/0"] = final
		}
		if err := sink.Save(ctx, actor.Checkpoint{ID: id, States: states}); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{1, 8, 9, 10}; !slices.Equal(ids, want) {
		t.Errorf("kept %v, want %v", ids, want)
	}
	// A new sink (a new run) finds the chain whole.
	cp, _, err := (&storeSink{store: store}).latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.ID != 10 || !bytes.Equal(cp.States["j/c/0"], full("k", "9")) {
		t.Errorf("checkpoint %d flattened %q, want 10 and %q", cp.ID, cp.States["j/c/0"], full("k", "9"))
	}
	// A damaged newest checkpoint is skipped for the one before; a damaged base, for every
	// chain through it.
	damage := func(id int) {
		t.Helper()
		p := filepath.Join(dir, "checkpoints", fmt.Sprintf("chk-%020d", id))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	damage(10)
	if cp, skipped, err := (&storeSink{store: store}).latest(ctx); err != nil || cp.ID != 9 || len(skipped) != 1 {
		t.Errorf("with 10 damaged: checkpoint %v, skipped %v, %v; want 9 and one skipped", cp, skipped, err)
	}
	damage(1)
	if cp, skipped, err := (&storeSink{store: store}).latest(ctx); err != nil || cp != nil || len(skipped) != 4 {
		t.Errorf("with the base damaged: checkpoint %v, skipped %v, %v; want none and four skipped", cp, skipped, err)
	}
}

func TestCheckpointEncoding(t *testing.T) {
	cp := actor.Checkpoint{ID: actor.FinalCheckpoint, States: map[string][]byte{"j/s/0": {1, 2}, "j/c/3": {}},
		Finished: map[string]bool{"j/s/0": true}}
	got, err := decodeCheckpoint(encodeCheckpoint(cp))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != cp.ID || len(got.States) != 2 || !bytes.Equal(got.States["j/s/0"], []byte{1, 2}) || !got.Finished["j/s/0"] || len(got.Finished) != 1 {
		t.Errorf("round trip: %+v, want %+v", got, cp)
	}
}

// A checkpoint's metadata comes from disk: bad bytes are an error, never a panic.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(actor.Checkpoint{ID: 3, States: map[string][]byte{"a": {1}}, Finished: map[string]bool{"a": true}}))
	f.Add([]byte("EC\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := decodeCheckpoint(b)
		if err == nil {
			if again, err := decodeCheckpoint(encodeCheckpoint(cp)); err != nil || again.ID != cp.ID || len(again.States) != len(cp.States) {
				t.Fatalf("re-encoding %+v: %+v, %v", cp, again, err)
			}
		}
	})
}

// A log that grows past its bound (a long interval, or checkpoints that keep failing) is
// dropped: the next snapshot is full, a snapshot taken before the drop no longer becomes a
// base when it completes, and deltas resume on the next full snapshot.
func TestDeltaLogOverflow(t *testing.T) {
	var budget atomic.Int64
	l := deltaLog{budget: &budget}
	l.snapshot(1)
	l.complete(1)
	l.written([]byte("a"), []byte("1"))
	if _, ok := l.snapshot(2); !ok {
		t.Fatal("snapshot 2 is full; 1 is its base")
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; l.base != 0; i++ {
		if i > maxDeltaBytes>>20+2 {
			t.Fatalf("%d MiB written and the log still holds %d bytes", i, l.size)
		}
		l.written(fmt.Appendf(nil, "k%d", i), big)
	}
	if budget.Load() != int64(l.size) || l.size > 1<<20+64 {
		t.Errorf("after the drop: the log holds %d bytes, the job's budget says %d", l.size, budget.Load())
	}
	l.complete(2) // taken before the drop: the changes since it are gone
	if l.base != 0 {
		t.Fatalf("checkpoint 2 became a base after the log was dropped")
	}
	if _, ok := l.snapshot(3); ok {
		t.Fatal("snapshot 3 after a drop is incremental")
	}
	l.complete(3)
	l.written([]byte("b"), []byte("2"))
	if d, ok := l.snapshot(4); !ok {
		t.Fatal("snapshot 4 is full; 3 is its base")
	} else if base, rest, _ := deltaBase(d); base != 3 || !bytes.Equal(rest, pairs("b", "2")) {
		t.Errorf("snapshot 4: base %d, pairs %q; want 3 and b=2", base, rest)
	}
	l.complete(4)
	if budget.Load() != int64(l.size) {
		t.Errorf("the budget says %d bytes, the log holds %d", budget.Load(), l.size)
	}
}

// A manifest's reference to a key group's runs comes from a store: bad bytes are an error
// (errBadCheckpoint), never a panic, and what decodes encodes back the same.
func FuzzDecodeRunsRef(f *testing.F) {
	f.Add(encodeRunsRef([]persistence.RunHandle{{Key: "chk-00000000000000000001/j~c~0.ab", Size: 9, CRC: 7, Pairs: 1}}))
	f.Add([]byte(runsRefMagic + "\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		chain, ok, err := decodeRunsRef(b)
		if !ok {
			return
		}
		if err != nil {
			if !errors.Is(err, errBadCheckpoint) {
				t.Fatalf("error %v is not errBadCheckpoint", err)
			}
			return
		}
		if again, _, err := decodeRunsRef(encodeRunsRef(chain)); err != nil || !slices.Equal(again, chain) {
			t.Fatalf("%+v does not round-trip: %+v, %v", chain, again, err)
		}
	})
}
