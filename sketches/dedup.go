package sketches

import (
	"fmt"
	"math"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// DedupConfig configures a Dedup stage.
type DedupConfig struct {
	// Within is D: a record is dropped when a record with the same id was seen (kept or
	// dropped) less than D before it. Required.
	Within time.Duration
	// EventTime measures D between record timestamps (stream.Record.Time, Unix ms) and
	// forgets ids as the watermark passes; false measures it on the job's processing-time
	// clock (graph.Clock) when each record is handled.
	EventTime bool
	// Approximate keeps only the rotating Bloom filters, no exact ids: memory is bounded
	// by Expected and FalsePositive whatever the number of ids, but a new record is
	// dropped with probability up to FalsePositive (a false positive of the filter).
	// false (the default) checks every "maybe seen" answer of the filter against the exact
	// ids of the last D, so that no new record is ever dropped; memory then grows with the
	// number of distinct ids within D.
	Approximate bool
	// Expected is the number of distinct ids expected within D, over the whole stage; it
	// sizes the filters (Capacity of RotatingBloomConfig, split over Buckets). 0 means
	// 1,000,000.
	Expected int
	// FalsePositive is the filters' target false-positive rate (see Approximate). 0 means
	// 0.01.
	FalsePositive float64
	// Buckets is the number of keys ids are hashed to: each bucket is a key of the keyed
	// stage, with its own filter and exact ids, owned by one instance. More buckets spread
	// better over instances and cost a filter each. 0 means 256.
	Buckets int
}

func (c *DedupConfig) validate() error {
	if c.Expected == 0 {
		c.Expected = 1_000_000
	}
	if c.FalsePositive == 0 {
		c.FalsePositive = 0.01
	}
	if c.Buckets == 0 {
		c.Buckets = 256
	}
	switch {
	case c.Within < time.Millisecond:
		return fmt.Errorf("dedup: within %v: want at least 1ms", c.Within)
	case c.Expected < 1:
		return fmt.Errorf("dedup: expected %d ids: want at least 1", c.Expected)
	case !(c.FalsePositive > 0 && c.FalsePositive < 1):
		return fmt.Errorf("dedup: false-positive rate %v: want it in (0, 1)", c.FalsePositive)
	case c.Buckets < 1 || c.Buckets > 1<<20:
		return fmt.Errorf("dedup: %d buckets: want 1 to %d", c.Buckets, 1<<20)
	}
	return nil
}

// dedupBucket is the state of one bucket of ids.
type dedupBucket struct {
	seen *RotatingBloom
	// last is the latest time each id was seen, for the exact check; nil when approximate.
	last map[string]int64
	// sweepAt is when the next sweep of last is due; 0: none is registered.
	sweepAt int64
	// latest is the latest time seen in the bucket; started says there is one.
	latest  int64
	started bool
}

// Dedup drops every record of s whose id was seen within cfg.Within before it, and passes
// the others on unchanged (timestamp and all).
//
// Exactly: ids are hashed into cfg.Buckets buckets, each a key of a keyed stage
// (graph.KeyBy, then graph.Process), so a bucket's state belongs to one instance. Let t be a
// record's time (the processing-time clock when it is handled, or with EventTime its
// timestamp). The record is a duplicate when its id was seen at some t′ with |t − t′| < D,
// seen meaning any earlier record of that id, kept or dropped: a record repeated more
// often than every D is kept once. With EventTime, t′ is the latest timestamp seen for the
// id, so an out-of-order record is compared with that one.
//
// The fast path is a rotating Bloom filter per bucket (D, 3 generations). For a record at
// or after the latest time its bucket has seen (every record, in processing time), the
// filter's "not seen" is certain and the record is kept at once; "maybe seen", and every
// out-of-order record, are checked against the bucket's exact ids (a map from id to its
// latest time). No new record is ever dropped: a false positive of the filter costs a map
// lookup, not a record. The exact ids are swept every D/2 of the clock (of the watermark
// with EventTime), so an id is held between D and 1.5·D after it was last seen (in event
// time, after the watermark passed it); a record later than that is compared with nothing
// and kept.
//
// With cfg.Approximate there are no exact ids: the filter's answer stands and memory is
// bounded by Expected and FalsePositive whatever the number of ids. The price: a new record
// is wrongly dropped with probability up to cfg.FalsePositive (with Expected sized right;
// more ids than Expected within D raise it), and in event time a record older than D
// before its bucket's latest time is kept, duplicate or not, since the filter has let go of
// that part of time.
//
// The records cross a re-partitioning boundary, so T needs a codec: pass graph.WithCodec
// in opts, which also go to the stage (graph.Name names it). Dedup's state is in-memory
// keyed state like any Process stage's.
func Dedup[T any](s graph.Stream[T], id func(T) string, cfg DedupConfig, opts ...graph.Option) (graph.Stream[T], error) {
	if id == nil {
		return graph.Stream[T]{}, fmt.Errorf("dedup: id function is nil")
	}
	if err := cfg.validate(); err != nil {
		return graph.Stream[T]{}, err
	}
	within := cfg.Within.Milliseconds()
	sweep := max(within/2, 1)
	rbc := RotatingBloomConfig{
		Window:        cfg.Within,
		Capacity:      bucketCapacity(cfg.Expected, cfg.Buckets),
		FalsePositive: cfg.FalsePositive,
	}
	if _, err := NewRotatingBloom(rbc); err != nil {
		return graph.Stream[T]{}, fmt.Errorf("dedup: %w", err)
	}
	buckets := uint64(cfg.Buckets)
	state := stream.NewValueState[*dedupBucket]("dedup")
	keyed := graph.KeyBy(s, func(v T) int { return int(xxhash.Sum64String(id(v)) % buckets) }, opts...)
	now := func(ctx stream.Context[int]) int64 {
		if cfg.EventTime {
			return ctx.Timestamp()
		}
		return ctx.Now().UnixMilli()
	}
	schedule := func(ctx stream.Context[int], b *dedupBucket, at int64) {
		b.sweepAt = at
		if cfg.EventTime {
			ctx.RegisterEventTimer(at)
		} else {
			ctx.RegisterTimer(time.UnixMilli(at))
		}
	}
	// sweepBucket forgets the exact ids last seen D or more before now.
	sweepBucket := func(ctx stream.Context[int], now int64) {
		b, ok := state.Get(ctx)
		if !ok || b.last == nil {
			return
		}
		b.sweepAt = 0
		if now > math.MaxInt64-sweep {
			clear(b.last) // the end of input (or of time): nothing can follow
			return
		}
		for k, t := range b.last {
			if now >= t && now-t >= within {
				delete(b.last, k)
			}
		}
		if len(b.last) > 0 {
			schedule(ctx, b, now+sweep)
		}
	}
	fn := stream.KeyedProcess[int, T, T]{
		OnRecord: func(ctx stream.Context[int], v T, out stream.Emitter[T]) error {
			b, ok := state.Get(ctx)
			if !ok {
				seen, err := NewRotatingBloom(rbc)
				if err != nil {
					return err
				}
				b = &dedupBucket{seen: seen}
				if !cfg.Approximate {
					b.last = map[string]int64{}
				}
				state.Set(ctx, b)
			}
			t, key := now(ctx), id(v)
			// The filter's "not seen" is certain for a record at or after the latest time
			// the bucket has seen: it holds every id seen within D before that. An
			// out-of-order record goes to the exact check; with Approximate, the filter
			// answers for it while it is within D of the latest time, and it is kept when
			// older.
			inOrder := !b.started || t >= b.latest
			inWindow := !b.started || b.latest-t < within
			b.latest, b.started = max(b.latest, t), true
			var dup bool
			if cfg.Approximate {
				dup = inWindow && b.seen.Test(key, t)
			} else if !inOrder || b.seen.Test(key, t) {
				prev, ok := b.last[key]
				dup = ok && abs(t-prev) < within
			}
			b.seen.Add(key, t)
			if !cfg.Approximate {
				if prev, ok := b.last[key]; !ok || t > prev {
					b.last[key] = t
				}
				if b.sweepAt == 0 {
					schedule(ctx, b, t+sweep)
				}
			}
			if !dup {
				out.Emit(v)
			}
			return nil
		},
		OnTimer: func(ctx stream.Context[int], at time.Time, _ stream.Emitter[T]) error {
			sweepBucket(ctx, at.UnixMilli())
			return nil
		},
		OnEventTimer: func(ctx stream.Context[int], ts int64, _ stream.Emitter[T]) error {
			sweepBucket(ctx, ts)
			return nil
		},
	}
	return graph.Process(keyed, fn, opts...), nil
}

// bucketCapacity is the share of expected ids of one bucket, with three standard deviations
// of headroom for the hash's uneven spread.
func bucketCapacity(expected, buckets int) uint {
	mean := float64(expected) / float64(buckets)
	return uint(math.Ceil(mean + 3*math.Sqrt(mean)))
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
