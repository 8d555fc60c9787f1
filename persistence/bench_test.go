package persistence

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The figures and the command are in docs/benchmarks.md ("Persistence"):
//
//	go test ./persistence -run '^$' -bench . -benchtime 2s

const benchEventSize = 100

// BenchmarkAppendBatch appends batches of 100-byte events spread over 16 identities to
// Badger, under each sync policy. One op is one event.
func BenchmarkAppendBatch(b *testing.B) {
	for _, bc := range []struct {
		batch int
		sync  SyncPolicy
	}{
		{1, SyncNever},
		{100, SyncNever},
		{1000, SyncNever},
		{1000, SyncEvery(100 * time.Millisecond)},
		{1000, SyncAlways},
		{100, SyncAlways},
	} {
		b.Run(fmt.Sprintf("batch=%d/sync=%s", bc.batch, bc.sync), func(b *testing.B) {
			db := openTestBadger(b, b.TempDir(), WithSync(bc.sync))
			j := db.Journal()
			const ids = 16
			seqs := make([]uint64, ids)
			data := make([]byte, benchEventSize)
			batch := make([]Event, 0, bc.batch)
			ctx := context.Background()
			b.SetBytes(benchEventSize)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				k := n % ids
				seqs[k]++
				batch = append(batch, Event{Identity: fmt.Sprintf("job/stage/%d", k), Seq: seqs[k], Data: data})
				n++
				if len(batch) == bc.batch {
					if err := j.AppendBatch(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if len(batch) > 0 {
				if err := j.AppendBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReplay replays one identity's 1,000,000 100-byte events from Badger. One op is
// one event.
func BenchmarkReplay(b *testing.B) {
	const events, batch = 1_000_000, 1000
	db := openTestBadger(b, b.TempDir())
	j := db.Journal()
	ctx := context.Background()
	data := make([]byte, benchEventSize)
	buf := make([]Event, 0, batch)
	for seq := uint64(1); seq <= events; seq++ {
		buf = append(buf, Event{Identity: "job/stage/0", Seq: seq, Data: data})
		if len(buf) == batch {
			if err := j.AppendBatch(ctx, buf); err != nil {
				b.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	b.SetBytes(benchEventSize)
	b.ReportAllocs()
	b.ResetTimer()
	seen := 0
	for seen < b.N {
		err := j.Replay(ctx, "job/stage/0", 1, MaxSeq, func(seq uint64, data []byte) error {
			seen++
			if seen == b.N {
				return errStopBench
			}
			return nil
		})
		if err != nil && err != errStopBench {
			b.Fatal(err)
		}
	}
}

var errStopBench = fmt.Errorf("enough")
