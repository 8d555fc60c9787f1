package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

type journalImpl struct {
	name string
	open func(t *testing.T) Journal
}

var journalImpls = []journalImpl{
	{"memory", func(t *testing.T) Journal { return NewMemoryJournal() }},
	{"badger", func(t *testing.T) Journal { return openTestBadger(t, t.TempDir()).Journal() }},
}

// replayed returns identity's events in [from, to] as "seq:data".
func replayed(t *testing.T, j Journal, identity string, from, to uint64) []string {
	t.Helper()
	var got []string
	err := j.Replay(context.Background(), identity, from, to, func(seq uint64, data []byte) error {
		got = append(got, fmt.Sprintf("%d:%s", seq, data))
		return nil
	})
	if err != nil {
		t.Fatalf("replay %q: %v", identity, err)
	}
	return got
}

func appendAll(t *testing.T, j Journal, identity string, seqs ...uint64) {
	t.Helper()
	for _, s := range seqs {
		if err := j.Append(context.Background(), identity, s, fmt.Appendf(nil, "%s#%d", identity, s)); err != nil {
			t.Fatalf("append %q %d: %v", identity, s, err)
		}
	}
}

func wantEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("replayed\n  %q\nwant\n  %q", got, want)
	}
}

func wantHighest(t *testing.T, j Journal, identity string, want uint64) {
	t.Helper()
	h, err := j.HighestSeq(context.Background(), identity)
	if err != nil || h != want {
		t.Fatalf("HighestSeq(%q) = %d, %v; want %d", identity, h, err, want)
	}
}

var journalCases = []struct {
	name string
	run  func(t *testing.T, j Journal)
}{
	{"empty", func(t *testing.T, j Journal) {
		wantEvents(t, replayed(t, j, "a", 1, MaxSeq))
		wantHighest(t, j, "a", 0)
	}},
	{"append and replay ranges", func(t *testing.T, j Journal) {
		appendAll(t, j, "a", 1, 2, 3, 5, 8)
		wantEvents(t, replayed(t, j, "a", 0, MaxSeq), "1:a#1", "2:a#2", "3:a#3", "5:a#5", "8:a#8")
		wantEvents(t, replayed(t, j, "a", 3, 5), "3:a#3", "5:a#5")
		wantEvents(t, replayed(t, j, "a", 4, 4))
		wantEvents(t, replayed(t, j, "a", 9, MaxSeq))
		wantHighest(t, j, "a", 8)
	}},
	{"identities that prefix each other stay apart", func(t *testing.T, j Journal) {
		for _, id := range []string{"job/s/1", "job/s/10", "job/s/1/x", "job/s"} {
			appendAll(t, j, id, 1, 2)
		}
		wantEvents(t, replayed(t, j, "job/s/1", 1, MaxSeq), "1:job/s/1#1", "2:job/s/1#2")
		wantEvents(t, replayed(t, j, "job/s", 1, MaxSeq), "1:job/s#1", "2:job/s#2")
	}},
	{"batch over identities", func(t *testing.T, j Journal) {
		err := j.AppendBatch(context.Background(), []Event{
			{"a", 1, []byte("a1")}, {"b", 7, []byte("b7")}, {"a", 2, []byte("a2")}, {"b", 9, []byte("b9")},
		})
		if err != nil {
			t.Fatal(err)
		}
		wantEvents(t, replayed(t, j, "a", 1, MaxSeq), "1:a1", "2:a2")
		wantEvents(t, replayed(t, j, "b", 1, MaxSeq), "7:b7", "9:b9")
		wantHighest(t, j, "b", 9)
	}},
	{"sequence numbers are checked", func(t *testing.T, j Journal) {
		appendAll(t, j, "a", 1, 2, 3)
		ctx := context.Background()
		for _, bad := range []struct {
			name   string
			events []Event
		}{
			{"duplicate", []Event{{"a", 3, nil}}},
			{"lower", []Event{{"a", 2, nil}}},
			{"zero", []Event{{"b", 0, nil}}},
			{"decreasing in batch", []Event{{"b", 5, nil}, {"b", 4, nil}}},
			// The whole batch is refused: "c" 1 must not be written.
			{"one bad identity refuses the batch", []Event{{"c", 1, nil}, {"a", 1, nil}}},
		} {
			if err := j.AppendBatch(ctx, bad.events); !errors.Is(err, ErrSeqOrder) {
				t.Errorf("%s: err = %v, want ErrSeqOrder", bad.name, err)
			}
		}
		wantHighest(t, j, "c", 0)
		wantEvents(t, replayed(t, j, "c", 1, MaxSeq))
		wantHighest(t, j, "a", 3)
		appendAll(t, j, "a", 4)
	}},
	{"bad identities", func(t *testing.T, j Journal) {
		for _, id := range []string{"", "a\x00b", strings.Repeat("x", maxIdentityLen+1)} {
			if err := j.Append(context.Background(), id, 1, nil); err == nil {
				t.Errorf("append to %q: no error", id)
			}
		}
	}},
	{"delete through keeps highest", func(t *testing.T, j Journal) {
		appendAll(t, j, "a", 1, 2, 3, 4)
		appendAll(t, j, "b", 1)
		ctx := context.Background()
		if err := j.DeleteTo(ctx, "a", 2); err != nil {
			t.Fatal(err)
		}
		wantEvents(t, replayed(t, j, "a", 1, MaxSeq), "3:a#3", "4:a#4")
		if err := j.DeleteTo(ctx, "a", MaxSeq); err != nil {
			t.Fatal(err)
		}
		wantEvents(t, replayed(t, j, "a", 1, MaxSeq))
		wantHighest(t, j, "a", 4)
		if err := j.Append(ctx, "a", 4, nil); !errors.Is(err, ErrSeqOrder) {
			t.Fatalf("append after delete: err = %v, want ErrSeqOrder", err)
		}
		appendAll(t, j, "a", 5)
		wantEvents(t, replayed(t, j, "a", 1, MaxSeq), "5:a#5")
		wantEvents(t, replayed(t, j, "b", 1, MaxSeq), "1:b#1")
		if err := j.DeleteTo(ctx, "nobody", 10); err != nil {
			t.Fatal(err)
		}
	}},
	{"delete after keeps highest", func(t *testing.T, j Journal) {
		appendAll(t, j, "a", 1, 2, 3, 4)
		ctx := context.Background()
		if err := j.DeleteAfter(ctx, "a", 2); err != nil {
			t.Fatal(err)
		}
		wantEvents(t, replayed(t, j, "a", 1, MaxSeq), "1:a#1", "2:a#2")
		wantHighest(t, j, "a", 4)
		if err := j.Append(ctx, "a", 3, nil); !errors.Is(err, ErrSeqOrder) {
			t.Fatalf("append 3 after DeleteAfter(2): err = %v, want ErrSeqOrder", err)
		}
		appendAll(t, j, "a", 5)
		if err := j.DeleteAfter(ctx, "a", MaxSeq); err != nil {
			t.Fatal(err)
		}
		if err := j.DeleteAfter(ctx, "a", 0); err != nil {
			t.Fatal(err)
		}
		wantEvents(t, replayed(t, j, "a", 1, MaxSeq))
		wantHighest(t, j, "a", 5)
	}},
	{"replay stops at the callback's error", func(t *testing.T, j Journal) {
		appendAll(t, j, "a", 1, 2, 3)
		stop := errors.New("stop")
		n := 0
		err := j.Replay(context.Background(), "a", 1, MaxSeq, func(uint64, []byte) error {
			n++
			return stop
		})
		if err != stop || n != 1 {
			t.Fatalf("err = %v after %d events, want stop after 1", err, n)
		}
	}},
	{"cancelled context", func(t *testing.T, j Journal) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := j.Append(ctx, "a", 1, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	}},
}

func TestJournal(t *testing.T) {
	for _, impl := range journalImpls {
		for _, tc := range journalCases {
			t.Run(impl.name+"/"+tc.name, func(t *testing.T) { tc.run(t, impl.open(t)) })
		}
	}
}

// TestJournalLarge appends 200,000 events over a few identities in batches and replays
// them, checking order and completeness, and for Badger again after reopening.
func TestJournalLarge(t *testing.T) {
	const events, batch = 200_000, 1000
	ids := []string{"job/count/0", "job/count/1", "job/count/2", "job/count/3"}
	check := func(t *testing.T, j Journal) {
		total := 0
		for _, id := range ids {
			next := uint64(1)
			err := j.Replay(context.Background(), id, 1, MaxSeq, func(seq uint64, data []byte) error {
				if seq != next {
					return fmt.Errorf("%s: seq %d, want %d", id, seq, next)
				}
				if want := fmt.Sprintf("%s/%d", id, seq); string(data) != want {
					return fmt.Errorf("%s seq %d: data %q, want %q", id, seq, data, want)
				}
				next++
				total++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if total != events {
			t.Fatalf("replayed %d events, want %d", total, events)
		}
	}
	fill := func(t *testing.T, j Journal) {
		seq := make(map[string]uint64)
		buf := make([]Event, 0, batch)
		for i := range events {
			id := ids[i%len(ids)]
			seq[id]++
			buf = append(buf, Event{Identity: id, Seq: seq[id], Data: fmt.Appendf(nil, "%s/%d", id, seq[id])})
			if len(buf) == batch {
				if err := j.AppendBatch(context.Background(), buf); err != nil {
					t.Fatal(err)
				}
				buf = buf[:0]
			}
		}
	}
	// deleteBothEnds deletes more than one chunk (10,000 keys in Badger) at each end of
	// ids[0]'s 50,000 events.
	deleteBothEnds := func(t *testing.T, j Journal) {
		ctx := context.Background()
		if err := j.DeleteTo(ctx, ids[0], 25_000); err != nil {
			t.Fatal(err)
		}
		if err := j.DeleteAfter(ctx, ids[0], 40_000); err != nil {
			t.Fatal(err)
		}
		var first, last, n uint64
		err := j.Replay(ctx, ids[0], 1, MaxSeq, func(seq uint64, _ []byte) error {
			if n == 0 {
				first = seq
			}
			last = seq
			n++
			return nil
		})
		if err != nil || first != 25_001 || last != 40_000 || n != 15_000 {
			t.Fatalf("after deletions: %d events %d..%d, %v; want 15000 events 25001..40000", n, first, last, err)
		}
	}
	t.Run("memory", func(t *testing.T) {
		j := NewMemoryJournal()
		fill(t, j)
		check(t, j)
		deleteBothEnds(t, j)
	})
	t.Run("badger", func(t *testing.T) {
		dir := t.TempDir()
		db, err := OpenBadger(dir, WithSync(SyncEvery(50*time.Millisecond)), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		fill(t, db.Journal())
		check(t, db.Journal())
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openTestBadger(t, dir)
		check(t, db.Journal())
		wantHighest(t, db.Journal(), ids[0], events/uint64(len(ids)))
		deleteBothEnds(t, db.Journal())
		wantHighest(t, db.Journal(), ids[0], events/uint64(len(ids)))
	})
}
