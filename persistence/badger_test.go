package persistence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestBadgerCloseStopsGoroutines checks that Close stops Badger's goroutines and the sync
// loop, even with writers and readers still running; they then get ErrClosed.
func TestBadgerCloseStopsGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t)
	db, err := OpenBadger(t.TempDir(), WithSync(SyncEvery(time.Millisecond)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			id := fmt.Sprintf("w/%d", w)
			for seq := uint64(1); ; seq += 10 {
				batch := make([]Event, 10)
				for i := range batch {
					batch[i] = Event{Identity: id, Seq: seq + uint64(i), Data: []byte("x")}
				}
				if err := db.Journal().AppendBatch(ctx, batch); err != nil {
					errs <- err
					return
				}
				if err := db.Journal().Replay(ctx, id, seq, MaxSeq, func(uint64, []byte) error { return nil }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
}

func TestOpenBadgerOptions(t *testing.T) {
	if _, err := OpenBadger(t.TempDir(), WithSync(SyncEvery(-time.Second))); err == nil {
		t.Fatal("negative sync interval: no error")
	}
	for _, tc := range []struct {
		p    SyncPolicy
		want string
	}{{SyncAlways, "always"}, {SyncNever, "never"}, {SyncEvery(time.Second), "every 1s"}} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
