package graph

import (
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
)

// Local aggregation (Flink's local-global aggregation, Spark's map-side combine): in front of
// the exchange into an Aggregate, Count or Reduce stage, each upstream instance folds the
// records of a short mini-batch per key into a partial accumulator, and sends the partials
// across the exchange instead of the records; the keyed stage merges them into its
// accumulators (stream.Merger). Far fewer records cross the exchange and reach the keyed
// stage, and the key function runs once per record instead of twice.
//
// A mini-batch ends, and its partials are written into the exchange in the order their keys
// first came, when it holds localAggKeys keys or has folded localAggRecords records, before
// a watermark or a checkpoint barrier passes (so event time and exactly-once see every
// record on the side of the mark it was on), at the end of input, and at the first linger
// tick once its first record has waited localAggLingers × Config.Linger (50ms by default):
// the partials of one mini-batch are about one per key, so the longer it lasts, the fewer
// cross. A retraction is not
// folded: it crosses as it is, after the partial of its key made before it, and the key's
// next records start a new partial after it, so every key's updates stay in order.
//
// What changes is only what is sent in between: the keyed stage's results are per merged
// partial instead of per record (as with Flink's mini-batch aggregation), and with the
// default stream.EmitPerBatch the last result of every key is sent as before. Final results
// are the same. It applies where the aggregator implements stream.Merger, the emit mode is
// not stream.EmitEveryUpdate (which promises a result per record) and there is no state TTL;
// LocalAggregation(false) turns it off for a stage.

// localAggKeys and localAggRecords bound a mini-batch, in batches (Config.BatchSize): the
// keys bound the memory it holds, the records how many a partial may stand for. It lasts at
// most localAggLingers lingers (Config.Linger).
const (
	localAggKeys    = 32
	localAggRecords = 1024
	localAggLingers = 10
)

// LocalAggregation turns local aggregation (see above, and docs/decisions-localglobal.md) on
// or off for an Aggregate, Count or Reduce stage. It is on by default where the aggregator
// allows it; turn it off for an aggregator whose Merge is not what adding the records one by
// one would give (a Reduce whose function is not associative), or to get the results of
// every input batch as it comes.
func LocalAggregation(on bool) Option {
	return optFunc(func(o *stageOpts) { o.noLocalAgg = !on })
}

// partial is what crosses the exchange into an aggregate stage with local aggregation: a
// key's accumulator over some records, or (Raw) one retraction as it came.
type partial[K comparable, T, A any] struct {
	Key   K
	Acc   A
	Value T
	Raw   bool
}

// localAggregates reports whether the stage folds its input upstream.
func localAggregates[T, A, R any](agg stream.Aggregator[T, A, R], o stageOpts) bool {
	if o.noLocalAgg || o.emit == stream.EmitEveryUpdate || o.ttl.Enabled() {
		return false
	}
	_, ok := agg.(stream.Merger[A])
	return ok
}

// combiner is the upstream side of local aggregation in one instance: it folds the records
// it is pushed into partials, which it writes into the exchange's writer when a mini-batch
// ends. It is the output group's actor.Holder.
//
// Its index of keys is an open-addressing table over the key hash KeyBy computes anyway
// (no second hash of the key), cleared slot by slot at the end of a mini-batch: this runs
// once per record, in place of the exchange.
type combiner[K comparable, T, A, R any] struct {
	env   *actor.Env
	stage string // the aggregate stage, whose dead letters its failures are
	key   func(T) K
	hash  func(K) uint64
	agg   stream.Aggregator[T, A, R]
	w     *actor.Writer[partial[K, T, A]]
	// parts are the partials of the mini-batch in the order their keys came; slots[s]-1 is
	// the partial (or retraction) last made for the keys that hash to slot s (0: none), and
	// at[i] the slot of parts[i].
	parts []stream.Record[partial[K, T, A]]
	slots []int32
	at    []int32
	shift uint
	// folded counts the records of the mini-batch; chunk is how many are folded between
	// checks of the bounds.
	folded  int
	chunk   int
	maxKeys int
	maxRecs int
	// since is when the mini-batch's first record came, hold how long it may last.
	since time.Time
	hold  time.Duration
}

func newCombiner[K comparable, T, A, R any](env *actor.Env, stage string, key func(T) K, hash func(K) uint64, agg stream.Aggregator[T, A, R], w *actor.Writer[partial[K, T, A]]) *combiner[K, T, A, R] {
	batch := env.Config.BatchSize
	c := &combiner[K, T, A, R]{env: env, stage: stage, key: key, hash: hash, agg: agg, w: w,
		chunk: batch, maxKeys: localAggKeys * batch, maxRecs: localAggRecords * batch, hold: localAggLingers * env.Config.Linger}
	// At most maxKeys+chunk entries between checks: a table twice that is at most half full.
	size := 1
	for size < 2*(c.maxKeys+c.chunk) {
		size *= 2
	}
	c.slots = make([]int32, size)
	c.shift = uint(64 - bits.TrailingZeros(uint(size)))
	return c
}

// push folds in, and ends the mini-batch whenever it is full.
func (c *combiner[K, T, A, R]) push(in []stream.Record[T]) {
	if len(c.parts) == 0 && len(in) > 0 {
		c.since = c.env.Now()
	}
	for len(in) > 0 {
		chunk := in[:min(len(in), c.chunk)]
		in = in[len(chunk):]
		for i := 0; i < len(chunk); {
			i = c.from(chunk, i)
		}
		c.folded += len(chunk)
		if len(c.parts) >= c.maxKeys || c.folded >= c.maxRecs {
			c.Drain()
		}
	}
}

// from folds in[start:] until the end or a panic in the key function or the aggregator,
// which costs the record a dead letter of the aggregate stage.
func (c *combiner[K, T, A, R]) from(in []stream.Record[T], start int) (next int) {
	defer recoverRecord(c.env, c.stage, in, &next)
	mask := len(c.slots) - 1
	for next = start; next < len(in); next++ {
		r := &in[next]
		k := c.key(r.Value)
		s := int(c.hash(k) >> c.shift)
		j := int32(0)
		for {
			j = c.slots[s]
			if j == 0 || c.parts[j-1].Value.Key == k {
				break
			}
			s = (s + 1) & mask
		}
		if r.Kind == stream.Retract {
			// As it is, after what came before it; the key's next records open a new
			// partial after it.
			c.slots[s] = c.open(s, stream.Record[partial[K, T, A]]{Value: partial[K, T, A]{Key: k, Value: r.Value, Raw: true}, Time: r.Time, Kind: stream.Retract})
			continue
		}
		if j == 0 || c.parts[j-1].Value.Raw {
			j = c.open(s, stream.Record[partial[K, T, A]]{Value: partial[K, T, A]{Key: k, Acc: c.agg.Zero()}, Time: r.Time})
			c.slots[s] = j
		}
		p := &c.parts[j-1]
		p.Value.Acc = c.agg.Add(p.Value.Acc, r.Value)
		if r.Time > p.Time {
			p.Time = r.Time
		}
	}
	return next
}

// open appends p, indexed at slot s, and returns its index + 1.
func (c *combiner[K, T, A, R]) open(s int, p stream.Record[partial[K, T, A]]) int32 {
	c.parts = append(c.parts, p)
	c.at = append(c.at, int32(s))
	return int32(len(c.parts))
}

// watermark ends the mini-batch, then passes w on behind it.
func (c *combiner[K, T, A, R]) watermark(w int64) {
	c.Drain()
	c.w.Watermark(w)
}

// Linger implements actor.Holder: the mini-batch ends once it has lasted long enough.
func (c *combiner[K, T, A, R]) Linger(now time.Time) {
	if now.Sub(c.since) >= c.hold {
		c.Drain()
	}
}

// Holding implements actor.Holder.
func (c *combiner[K, T, A, R]) Holding() bool { return len(c.parts) > 0 }

// Drain implements actor.Holder: the partials go into the writer, which may wait for credit
// in the middle; nothing else runs in the instance meanwhile.
func (c *combiner[K, T, A, R]) Drain() {
	c.folded = 0
	if len(c.parts) == 0 {
		return
	}
	c.w.WriteAll(c.parts)
	clear(c.parts)
	c.parts = c.parts[:0]
	for _, s := range c.at {
		c.slots[s] = 0
	}
	c.at = c.at[:0]
}

// wireCombiningInput makes k's stream feed aggregate stage ns through combiners and a hash
// exchange of partials.
func wireCombiningInput[K comparable, T, A, R any](ns *stage, k Keyed[K, T], agg stream.Aggregator[T, A, R]) {
	in := k.in.st
	if in == nil || in.g != ns.g {
		return // reported by newStage
	}
	values := requireCodecOf[T](ns, in, "KeyBy", k.opts.codec)
	keys := keyCodecOf(k.keyCodec)
	key, hash := k.key, k.hash
	combinerOf := func(ic *inst) *combiner[K, T, A, R] {
		return ic.writer(ns, 0, func(g *actor.OutputGroup) any {
			n := g.Destinations()
			w := actor.NewWriter(g, func(r stream.Record[partial[K, T, A]]) int { return operator.KeyGroup(hash(r.Value.Key), n) })
			c := newCombiner(ic.env, ns.name, key, hash, agg, w)
			g.Hold(c)
			return c
		}).(*combiner[K, T, A, R])
	}
	outs := in.outputs.(*outputs[T])
	outs.consumers = append(outs.consumers, func(ic *inst) push[T] { return combinerOf(ic).push })
	in.wms = append(in.wms, func(ic *inst) func(int64) { return combinerOf(ic).watermark })
	wire := func() actor.RecordsCodec {
		vc, err := values()
		if err != nil {
			return nil // reported by the check, before any plan is made
		}
		return actor.NewRecordsCodec[partial[K, T, A]](partialCodec[K, T, A]{keys: keys, values: vc})
	}
	in.links = append(in.links, link{to: ns, exchange: true, partitioning: actor.Hash, wire: wire})
}

// partialCodec encodes partials for other nodes: a byte that says which (0 a partial, 1 a
// retraction), the key (uvarint length, then the key codec's bytes), then the accumulator
// (stream.EncodeState) or the retracted value (the stream's codec).
type partialCodec[K comparable, T, A any] struct {
	keys   stream.Codec[K]
	values stream.Codec[T]
}

func (c partialCodec[K, T, A]) Append(dst []byte, p partial[K, T, A]) ([]byte, error) {
	flag := byte(0)
	if p.Raw {
		flag = 1
	}
	kb, err := c.keys.Append(nil, p.Key)
	if err != nil {
		return nil, fmt.Errorf("encode a partial aggregate's key: %w", err)
	}
	dst = appendUvarintBytes(append(dst, flag), kb)
	if p.Raw {
		if dst, err = c.values.Append(dst, p.Value); err != nil {
			return nil, fmt.Errorf("encode a retraction: %w", err)
		}
		return dst, nil
	}
	ab, err := stream.EncodeState(p.Acc)
	if err != nil {
		return nil, fmt.Errorf("encode a partial aggregate: %w", err)
	}
	return append(dst, ab...), nil
}

var errPartialFlag = errors.New("decode a partial aggregate: bad kind byte")

func (c partialCodec[K, T, A]) Decode(src []byte) (partial[K, T, A], error) {
	var p partial[K, T, A]
	if len(src) == 0 || src[0] > 1 {
		return p, errPartialFlag
	}
	p.Raw = src[0] == 1
	kb, rest, err := cutUvarintBytes(src[1:])
	if err != nil {
		return p, fmt.Errorf("decode a partial aggregate's key: %w", err)
	}
	if p.Key, err = c.keys.Decode(kb); err != nil {
		return p, fmt.Errorf("decode a partial aggregate's key: %w", err)
	}
	if p.Raw {
		if p.Value, err = c.values.Decode(rest); err != nil {
			return p, fmt.Errorf("decode a retraction: %w", err)
		}
		return p, nil
	}
	if p.Acc, err = stream.DecodeState[A](rest); err != nil {
		return p, fmt.Errorf("decode a partial aggregate: %w", err)
	}
	return p, nil
}

// mergeFrom merges the partials recs[start:] into the operator until the end, a blocked
// output or a panic (in the aggregator's Merge), which costs that partial a dead letter.
func (t *aggregateTask[K, T, A, R]) mergeFrom(recs []stream.Record[partial[K, T, A]], start int) (next int) {
	defer recoverRecord(t.env, t.name, recs, &next)
	for next = start; next < len(recs) && !t.env.Blocked(); next++ {
		r := &recs[next]
		if r.Value.Raw {
			raw := []stream.Record[T]{{Value: r.Value.Value, Time: r.Time, Kind: r.Kind}}
			if err := t.op.Process(raw[0]); err != nil {
				deadLetter(t.env, t.name, err.Error(), raw, 0)
			}
			continue
		}
		if err := t.op.Merge(r.Value.Key, r.Value.Acc, r.Time); err != nil {
			deadLetter(t.env, t.name, err.Error(), recs, next)
		}
	}
	return next
}
