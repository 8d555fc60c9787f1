package persistence

import (
	"context"
	"errors"
	"slices"
	"testing"
)

type snapshotImpl struct {
	name string
	open func(t *testing.T) SnapshotStore
}

var snapshotImpls = []snapshotImpl{
	{"memory", func(t *testing.T) SnapshotStore { return NewMemorySnapshots() }},
	{"badger", func(t *testing.T) SnapshotStore { return openTestBadger(t, t.TempDir()).Snapshots() }},
}

func saveAll(t *testing.T, s SnapshotStore, identity string, seqs ...uint64) {
	t.Helper()
	for _, seq := range seqs {
		if err := s.Save(context.Background(), identity, seq, snapData(identity, seq)); err != nil {
			t.Fatalf("save %q %d: %v", identity, seq, err)
		}
	}
}

func snapData(identity string, seq uint64) []byte {
	return []byte(identity + "@" + string(rune('0'+seq%10)))
}

func wantList(t *testing.T, s SnapshotStore, identity string, want ...uint64) {
	t.Helper()
	got, err := s.List(context.Background(), identity)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %v, %v; want %v", identity, got, err, want)
	}
}

var snapshotCases = []struct {
	name string
	run  func(t *testing.T, s SnapshotStore)
}{
	{"empty", func(t *testing.T, s SnapshotStore) {
		wantList(t, s, "a")
		if _, err := s.Load(context.Background(), "a", 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("load: err = %v, want ErrNotFound", err)
		}
		if _, err := LoadLatestValid(context.Background(), SnapshotsOf(s, "a")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LoadLatestValid: err = %v, want ErrNotFound", err)
		}
	}},
	{"save list load", func(t *testing.T, s SnapshotStore) {
		saveAll(t, s, "a", 10, 0, 5)
		saveAll(t, s, "ab", 7)
		wantList(t, s, "a", 0, 5, 10)
		wantList(t, s, "ab", 7)
		for _, seq := range []uint64{0, 5, 10} {
			got, err := s.Load(context.Background(), "a", seq)
			if err != nil || string(got) != string(snapData("a", seq)) {
				t.Fatalf("Load(a, %d) = %q, %v", seq, got, err)
			}
		}
		l, err := LoadLatestValid(context.Background(), SnapshotsOf(s, "a"))
		if err != nil || l.N != 10 || string(l.Data) != "a@0" || len(l.Skipped) != 0 {
			t.Fatalf("LoadLatestValid = %+v, %v", l, err)
		}
	}},
	{"save replaces the same seq", func(t *testing.T, s SnapshotStore) {
		ctx := context.Background()
		if err := s.Save(ctx, "a", 3, []byte("old")); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, "a", 3, []byte("new")); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, "a", 3)
		if got, _ := s.Load(ctx, "a", 3); string(got) != "new" {
			t.Fatalf("Load = %q, want new", got)
		}
	}},
	{"keep", func(t *testing.T, s SnapshotStore) {
		saveAll(t, s, "a", 1, 2, 3, 4, 5)
		saveAll(t, s, "b", 1, 2)
		ctx := context.Background()
		if err := s.Keep(ctx, "a", 2); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, "a", 4, 5)
		if err := s.Keep(ctx, "a", 3); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, "a", 4, 5)
		wantList(t, s, "b", 1, 2)
		if err := s.Keep(ctx, "a", 0); err == nil {
			t.Fatal("keep 0: no error")
		}
	}},
	{"delete through", func(t *testing.T, s SnapshotStore) {
		saveAll(t, s, "a", 1, 2, 3)
		ctx := context.Background()
		if err := s.DeleteTo(ctx, "a", 2); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, "a", 3)
		if err := s.DeleteTo(ctx, "a", MaxSeq); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, "a")
	}},
	{"bad identity", func(t *testing.T, s SnapshotStore) {
		if err := s.Save(context.Background(), "a\x00", 1, nil); err == nil {
			t.Fatal("no error")
		}
	}},
}

func TestSnapshotStore(t *testing.T) {
	for _, impl := range snapshotImpls {
		for _, tc := range snapshotCases {
			t.Run(impl.name+"/"+tc.name, func(t *testing.T) { tc.run(t, impl.open(t)) })
		}
	}
}

func TestBadgerSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := OpenBadger(dir, WithLogger(testLogger(t)), WithSync(SyncAlways))
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, db.Journal(), "a", 1, 2, 3)
	if err := db.Journal().DeleteTo(ctx, "a", MaxSeq); err != nil {
		t.Fatal(err)
	}
	appendAll(t, db.Journal(), "b", 1, 2)
	appendAll(t, db.Journal(), "c", 1, 2, 3)
	if err := db.Journal().DeleteAfter(ctx, "c", 1); err != nil {
		t.Fatal(err)
	}
	saveAll(t, db.Snapshots(), "a", 3)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.Journal().Append(ctx, "a", 9, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: err = %v, want ErrClosed", err)
	}

	db = openTestBadger(t, dir)
	wantHighest(t, db.Journal(), "a", 3) // from the deletion mark: no event is left
	wantHighest(t, db.Journal(), "b", 2)
	wantHighest(t, db.Journal(), "c", 3)
	wantEvents(t, replayed(t, db.Journal(), "c", 1, MaxSeq), "1:c#1")
	wantEvents(t, replayed(t, db.Journal(), "b", 1, MaxSeq), "1:b#1", "2:b#2")
	wantList(t, db.Snapshots(), "a", 3)
}
