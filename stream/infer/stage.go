package infer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Stage scores the records of s with m: features makes each record's input row, and every
// record comes out as a Scored with the model's output row, or goes to the dead-letter
// output with the reason (features that panic or have the wrong width, a request that still
// fails after its retries). m may be a *Versions, to route among live versions.
//
// The stage runs behind an exchange (an asynchronous boundary, as Flink's AsyncIO is its
// own operator): the source goes on reading while the stage scores, the exchange's batches
// are the dynamic batches (see MaxBatch), and its credits with Concurrency bound what is in
// flight. Each batch the stage receives is cut into requests of at most MaxBatch rows, sent
// up to Concurrency at a time; the batch is done, and its results go on, when all its
// requests are. So a checkpoint barrier, which follows the batch, never finds a record in
// flight: nothing is lost or scored twice across a restore (exactly once with a replayable
// source and a two-phase sink).
func Stage[T any](s graph.Stream[T], m Model, features func(T) []float32, opts ...Option) graph.Stream[Scored[T]] {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.name == "" {
		c.name = "infer"
	}
	cfgErr := c.validate()
	var key func(T) string
	if c.key != nil {
		k, ok := c.key.(func(T) string)
		if !ok && cfgErr == nil {
			cfgErr = fmt.Errorf("infer stage %q: Key takes a func(%T) string, not a %T", c.name, *new(T), c.key)
		}
		key = k
	}
	if m == nil && cfgErr == nil {
		cfgErr = fmt.Errorf("infer stage %q: model is nil", c.name)
	}
	if features == nil && cfgErr == nil {
		cfgErr = fmt.Errorf("infer stage %q: features function is nil", c.name)
	}

	var boundary []graph.Option
	boundary = append(boundary, graph.Name(c.name+".in"))
	if c.codec != nil {
		if codec, ok := c.codec.(stream.Codec[T]); ok {
			boundary = append(boundary, graph.WithCodec(codec))
		} else if cfgErr == nil {
			cfgErr = fmt.Errorf("infer stage %q: WithCodec gives a %T, not a codec of the stage's records", c.name, c.codec)
		}
	} else if _, ok := stream.CodecFor[T](); !ok {
		boundary = append(boundary, graph.WithCodec(stream.JSON[T]()))
	}
	if cfgErr != nil {
		graph.Invalid(s, cfgErr)
	}
	in := graph.Rebalance(s, boundary...)

	versions, _ := m.(*Versions)
	if versions == nil && m != nil {
		versions = NewVersions()
		_ = versions.Set("", m, 1)
	}
	var limit *rateLimiter
	if c.rate > 0 {
		limit = &rateLimiter{interval: time.Duration(float64(time.Second) / c.rate)}
	}
	return graph.MapBatches(in, func(ctx context.Context, recs []stream.Record[T], emit func(stream.Record[Scored[T]]), reject func(stream.Record[T], string)) {
		if cfgErr != nil {
			return // not reached: Build failed
		}
		b := &batch[T]{cfg: &c, ctx: ctx, recs: recs, emit: emit, reject: reject, limit: limit}
		b.run(versions, features, key)
	}, graph.Name(c.name))
}

// batch is the scoring of one batch the stage received.
type batch[T any] struct {
	cfg    *config
	ctx    context.Context
	recs   []stream.Record[T]
	emit   func(stream.Record[Scored[T]])
	reject func(stream.Record[T], string)
	limit  *rateLimiter

	// outs[i] is the output row of recs[i]; vers[i] the version that scored it.
	outs [][]float32
	vers []string
}

// request is the rows of one call to one version: positions in the batch, and their rows.
type request struct {
	ver  *version
	pos  []int
	rows [][]float32
}

func (b *batch[T]) run(vs *Versions, features func(T) []float32, key func(T) string) {
	t := vs.acquire()
	defer t.release()
	if len(t.live) == 0 {
		for _, r := range b.recs {
			b.reject(r, "no live model version")
		}
		return
	}
	// Rows and routes first: a record whose features fail goes to dead letters alone.
	byVersion := map[*version]*request{}
	var order []*version
	for i, r := range b.recs {
		row, err := rowOf(features, r.Value)
		if err != nil {
			b.reject(r, err.Error())
			continue
		}
		var h uint64
		if key != nil {
			k, err := keyOf(key, r.Value)
			if err != nil {
				b.reject(r, err.Error())
				continue
			}
			h = xxhash.Sum64String(k)
		} else {
			h = xxhash.Sum64String(strconv.Itoa(i))
		}
		v := t.route(h)
		if sh, ok := v.model.(Shaped); ok && sh.InputWidth() > 0 && len(row) != sh.InputWidth() {
			b.reject(r, fmt.Sprintf("features have %d values; model version %q takes %d", len(row), v.name, sh.InputWidth()))
			continue
		}
		req := byVersion[v]
		if req == nil {
			req = &request{ver: v}
			byVersion[v] = req
			order = append(order, v)
		}
		req.pos = append(req.pos, i)
		req.rows = append(req.rows, row)
	}
	var reqs []request
	for _, v := range order {
		all := byVersion[v]
		for lo := 0; lo < len(all.pos); lo += b.cfg.maxBatch {
			hi := min(lo+b.cfg.maxBatch, len(all.pos))
			reqs = append(reqs, request{ver: v, pos: all.pos[lo:hi], rows: all.rows[lo:hi]})
		}
	}
	if !b.cfg.unordered {
		b.outs = make([][]float32, len(b.recs))
		b.vers = make([]string, len(b.recs))
	}
	// Up to concurrency requests at a time; every goroutine ends before run returns.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(b.cfg.concurrency, len(reqs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				b.score(&reqs[i], t.shadow)
			}
		})
	}
	wg.Wait()
	if !b.cfg.unordered {
		for i, out := range b.outs {
			if out != nil {
				r := b.recs[i]
				b.emit(stream.Record[Scored[T]]{Value: Scored[T]{In: r.Value, Output: out, Version: b.vers[i]}, Time: r.Time, Kind: r.Kind})
			}
		}
	}
}

// score sends one request, with retries, and records or emits its results.
func (b *batch[T]) score(req *request, shadow *version) {
	out, err := b.call(req.ver, req.rows)
	if err != nil {
		for _, p := range req.pos {
			b.reject(b.recs[p], fmt.Sprintf("infer with model version %q: %v", req.ver.name, err))
		}
		return
	}
	if shadow != nil {
		b.compare(shadow, req.rows, out)
	}
	for j, p := range req.pos {
		if b.cfg.unordered {
			r := b.recs[p]
			b.emit(stream.Record[Scored[T]]{Value: Scored[T]{In: r.Value, Output: out[j], Version: req.ver.name}, Time: r.Time, Kind: r.Kind})
			continue
		}
		b.outs[p], b.vers[p] = out[j], req.ver.name
	}
}

// call runs one request against v: each attempt under the timeout, failed ones retried
// after a backoff, unless the error is Permanent or the job is cancelled.
func (b *batch[T]) call(v *version, rows [][]float32) ([][]float32, error) {
	wait := b.cfg.backoff
	var err error
	for attempt := 0; ; attempt++ {
		if b.limit != nil {
			if err := b.limit.wait(b.ctx); err != nil {
				return nil, err
			}
		}
		var out [][]float32
		out, err = b.attempt(v, rows)
		if err == nil {
			return out, nil
		}
		v.stats.failures.Add(1)
		if IsPermanent(err) || b.ctx.Err() != nil || attempt >= b.cfg.retries {
			break
		}
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-b.ctx.Done():
			return nil, fmt.Errorf("%w (job cancelled during backoff)", err)
		case <-time.After(d):
		}
		wait = min(2*wait, b.cfg.maxBackoff)
	}
	if b.cfg.retries > 0 && !IsPermanent(err) {
		return nil, fmt.Errorf("after %d retries: %w", b.cfg.retries, err)
	}
	return nil, err
}

func (b *batch[T]) attempt(v *version, rows [][]float32) (out [][]float32, err error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, Permanent(fmt.Errorf("model panicked: %v", p))
		}
	}()
	start := time.Now()
	out, err = v.model.Infer(ctx, rows)
	if err == nil {
		err = checkOutput(rows, out)
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("request took longer than the %v timeout: %w", b.cfg.timeout, ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	v.stats.ok(len(rows), time.Since(start))
	return out, nil
}

// compare scores rows with the shadow version and counts how far it is from out. A failing
// shadow is counted and otherwise ignored: it must never cost a record.
func (b *batch[T]) compare(shadow *version, rows, out [][]float32) {
	got, err := b.attempt(shadow, rows)
	if err != nil {
		shadow.stats.failures.Add(1)
		return
	}
	s := shadow.stats
	s.shadowRecords.Add(int64(len(rows)))
	for i := range out {
		diff := 0.0
		if len(got[i]) != len(out[i]) {
			diff = math.Inf(1)
		} else {
			for j := range out[i] {
				diff = math.Max(diff, math.Abs(float64(got[i][j])-float64(out[i][j])))
			}
		}
		if diff > ShadowTolerance {
			s.disagree.Add(1)
		}
		for {
			cur := s.maxDiffBits.Load()
			if diff <= math.Float64frombits(cur) || s.maxDiffBits.CompareAndSwap(cur, math.Float64bits(diff)) {
				break
			}
		}
	}
}

// rowOf calls features; a panic is the record's error.
func rowOf[T any](features func(T) []float32, v T) (row []float32, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in the features function: %v", p)
		}
	}()
	return features(v), nil
}

func keyOf[T any](key func(T) string, v T) (k string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in the key function: %v", p)
		}
	}()
	return key(v), nil
}

// rateLimiter spaces request starts at least interval apart, over all its users.
type rateLimiter struct {
	interval time.Duration
	// mu guards next, the earliest start of the next request.
	mu   sync.Mutex
	next time.Time
}

func (l *rateLimiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	if d := time.Until(at); d > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the rate limit: %w", ctx.Err())
		case <-time.After(d):
		}
	}
	return nil
}
