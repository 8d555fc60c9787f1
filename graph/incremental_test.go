package graph

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/eddyflow/eddy/actor"
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
	if _, ok := l.snapshot(actor.FinalCheckpoint); ok {
		t.Error("the final snapshot is incremental; later checkpoints keep it, its base may go")
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
