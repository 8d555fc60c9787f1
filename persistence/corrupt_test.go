package persistence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// rewriteValue replaces the stored value under key with f(value), bypassing the package, as
// a disk error or a bad restore would.
func rewriteValue(t *testing.T, db *BadgerDB, key []byte, f func([]byte) []byte) {
	t.Helper()
	err := db.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		return txn.Set(key, f(v))
	})
	if err != nil {
		t.Fatalf("rewrite %q: %v", key, err)
	}
}

func flipByte(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		b[min(i, len(b)-1)] ^= 0x40
		return b
	}
}

func truncateTo(n int) func([]byte) []byte {
	return func(b []byte) []byte { return b[:n] }
}

// wantCorrupt checks that err is a *CorruptError whose Where and Reason contain the given
// strings.
func wantCorrupt(t *testing.T, err error, where, reason string) *CorruptError {
	t.Helper()
	var c *CorruptError
	if !errors.As(err, &c) {
		t.Fatalf("err = %v, want a *CorruptError", err)
	}
	if !strings.Contains(c.Where, where) || !strings.Contains(c.Reason, reason) {
		t.Fatalf("CorruptError{Where: %q, Reason: %q}, want Where with %q and Reason with %q", c.Where, c.Reason, where, reason)
	}
	return c
}

func TestCorruptJournalEntry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func([]byte) []byte
		reason  string
	}{
		{"flipped payload byte", flipByte(12), "CRC-32C mismatch"},
		{"flipped version", flipByte(0), "unknown format version 65, want 1"},
		{"truncated", truncateTo(11), "truncated: payload is 2 bytes, header says 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openTestBadger(t, dir)
			appendAll(t, db.Journal(), "job/s/7", 1, 2, 3)
			rewriteValue(t, db, seqKey("job/s/7", kindEvent, 2), tc.corrupt)
			var got []uint64
			err := db.Journal().Replay(context.Background(), "job/s/7", 1, MaxSeq, func(seq uint64, _ []byte) error {
				got = append(got, seq)
				return nil
			})
			wantCorrupt(t, err, `journal entry "job/s/7" seq 2 in badger `+dir, tc.reason)
			if len(got) != 1 || got[0] != 1 {
				t.Fatalf("replayed %v before the corrupt entry, want [1]", got)
			}
		})
	}
}

func TestCorruptSnapshotFallsBack(t *testing.T) {
	dir := t.TempDir()
	db := openTestBadger(t, dir)
	s := db.Snapshots()
	saveAll(t, s, "a", 10, 20, 30)
	rewriteValue(t, db, seqKey("a", kindSnapshot, 30), flipByte(9))
	rewriteValue(t, db, seqKey("a", kindSnapshot, 20), truncateTo(5))
	ctx := context.Background()

	_, err := s.Load(ctx, "a", 30)
	wantCorrupt(t, err, `snapshot "a" seq 30 in badger `+dir, "CRC-32C mismatch")

	l, err := LoadLatestValid(ctx, SnapshotsOf(s, "a"))
	if err != nil || l.N != 10 || string(l.Data) != string(snapData("a", 10)) {
		t.Fatalf("LoadLatestValid = %+v, %v; want seq 10", l, err)
	}
	if len(l.Skipped) != 2 {
		t.Fatalf("skipped %v, want 2", l.Skipped)
	}
	wantCorrupt(t, l.Skipped[0], `snapshot "a" seq 30`, "CRC-32C mismatch")
	wantCorrupt(t, l.Skipped[1], `snapshot "a" seq 20`, "truncated: 5 bytes")

	rewriteValue(t, db, seqKey("a", kindSnapshot, 10), flipByte(3))
	l, err = LoadLatestValid(ctx, SnapshotsOf(s, "a"))
	if !errors.Is(err, ErrNotFound) || len(l.Skipped) != 3 {
		t.Fatalf("all corrupt: %+v, %v; want ErrNotFound and 3 skipped", l, err)
	}
}

func TestCorruptCheckpointFallsBack(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDirCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for n := uint64(1); n <= 3; n++ {
		if err := s.Write(ctx, n, []byte("checkpoint metadata")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteSavepoint(ctx, "sp", []byte("savepoint metadata")); err != nil {
		t.Fatal(err)
	}
	path := func(n uint64) string { return s.checkpointPath(n) }
	editFile(t, path(3), flipByte(15))
	editFile(t, path(2), truncateTo(20))
	editFile(t, filepath.Join(dir, "savepoints", "sp.savepoint"), flipByte(1))

	_, err = s.Load(ctx, 3)
	wantCorrupt(t, err, path(3), "CRC-32C mismatch")
	_, err = s.Load(ctx, 2)
	wantCorrupt(t, err, path(2), "truncated: payload is 11 bytes, header says 19")
	_, err = s.LoadSavepoint(ctx, "sp")
	wantCorrupt(t, err, filepath.Join(dir, "savepoints", "sp.savepoint"), "header says")

	l, err := LoadLatestValid(ctx, s)
	if err != nil || l.N != 1 || len(l.Skipped) != 2 {
		t.Fatalf("LoadLatestValid = %+v, %v; want checkpoint 1 after skipping 2", l, err)
	}
	if l.Skipped[0].Where != path(3) || l.Skipped[1].Where != path(2) {
		t.Fatalf("skipped %v, want %s then %s", l.Skipped, path(3), path(2))
	}
}

func editFile(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}
