package sketches

import (
	"fmt"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

// RotatingBloomConfig sizes a rotating Bloom filter.
type RotatingBloomConfig struct {
	// Window is D: an item added at time t is reported present at every time before t + D.
	// Required.
	Window time.Duration
	// Generations is G, the number of Bloom filters kept, each covering D/(G−1) of time.
	// An item is forgotten between D and D·G/(G−1) after it was added: more generations
	// forget sooner after D, at the cost of memory (G filters) and of more filters to
	// test. 2 to 64; 0 means 3 (forgotten within 1.5·D).
	Generations int
	// Capacity is the number of distinct items expected within one Window. Each generation
	// is sized for all of them, since its span is at most D: bursts within the window do
	// not raise the false-positive rate. 0 means 100,000.
	Capacity uint
	// FalsePositive is the target probability that Test reports an item not added within
	// the window; each generation gets FalsePositive/G, so that the G together stay within
	// it. 0 means 0.01.
	FalsePositive float64
}

func (c *RotatingBloomConfig) validate() error {
	if c.Generations == 0 {
		c.Generations = 3
	}
	switch {
	case c.Window < time.Millisecond:
		return fmt.Errorf("rotating bloom: window %v: want at least 1ms", c.Window)
	case c.Generations < 2 || c.Generations > 64:
		return fmt.Errorf("rotating bloom: %d generations: want 2 to 64", c.Generations)
	}
	return nil
}

// RotatingBloom answers "was this item added in the last D?" in bounded memory: G Bloom
// filters, each holding the items added during one span of D/(G−1), the oldest dropped as
// time moves on. Time is passed in (Unix ms, or any millisecond scale): the filter has no
// clock and no goroutine. Let L be the latest time it has been given. Then
//
//   - an item added at t with L − t < D tests present (no false negatives within D);
//   - an item added at t with L − t ≥ D·G/(G−1) (plus up to G ms of rounding) tests absent,
//     but for a false positive;
//   - between the two, it may test either way;
//   - an item never added within the window tests present with probability about the
//     configured FalsePositive (at most the sum of the G filters' rates).
//
// Memory is G filters of Capacity items at FalsePositive/G each (Capacity 100,000 at 1%,
// G = 3: 3 × 146 KB). An Add with a time
// older than every generation kept is dropped: that item is already out of the window.
//
// A RotatingBloom is not safe for concurrent use.
type RotatingBloom struct {
	span    int64 // ms per generation
	gens    []*bloom.BloomFilter
	cur     int64 // generation number of gens[0]; gens[i] holds cur − i
	started bool
}

// NewRotatingBloom returns an empty rotating filter.
func NewRotatingBloom(cfg RotatingBloomConfig) (*RotatingBloom, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := cfg.Generations
	per := BloomConfig{Capacity: cfg.Capacity, FalsePositive: cfg.FalsePositive}
	if per.Capacity == 0 {
		per.Capacity = 100_000
	}
	if per.FalsePositive == 0 {
		per.FalsePositive = 0.01
	}
	per.FalsePositive /= float64(g)
	if err := per.validate("rotating bloom"); err != nil {
		return nil, err
	}
	d := cfg.Window.Milliseconds()
	r := &RotatingBloom{span: (d + int64(g-2)) / int64(g-1), gens: make([]*bloom.BloomFilter, g)}
	for i := range r.gens {
		r.gens[i] = bloom.NewWithEstimates(per.Capacity, per.FalsePositive)
	}
	return r, nil
}

// Span returns how much time one generation covers, D/(G−1) rounded up to a millisecond.
func (r *RotatingBloom) Span() time.Duration { return time.Duration(r.span) * time.Millisecond }

// Generations returns G.
func (r *RotatingBloom) Generations() int { return len(r.gens) }

func (r *RotatingBloom) gen(now int64) int64 {
	q := now / r.span
	if now%r.span != 0 && now < 0 {
		q--
	}
	return q
}

// Advance moves the filter's time to now, dropping the generations that fall out of the
// window. Add calls it; a time before the latest one does nothing.
func (r *RotatingBloom) Advance(now int64) {
	g := r.gen(now)
	if !r.started {
		r.cur, r.started = g, true
		return
	}
	if g <= r.cur {
		return
	}
	if shift := g - r.cur; shift >= int64(len(r.gens)) {
		for _, f := range r.gens {
			f.ClearAll()
		}
	} else {
		for range shift {
			last := r.gens[len(r.gens)-1]
			copy(r.gens[1:], r.gens[:len(r.gens)-1])
			last.ClearAll()
			r.gens[0] = last
		}
	}
	r.cur = g
}

// Add adds item at time now (ms).
func (r *RotatingBloom) Add(item string, now int64) {
	r.Advance(now)
	if age := r.cur - r.gen(now); age >= 0 && age < int64(len(r.gens)) {
		r.gens[age].AddString(item)
	}
}

// Test reports whether item may have been added within the window before now, or before the
// latest time the filter has seen if that is later. It does not change the filter.
func (r *RotatingBloom) Test(item string, now int64) bool {
	if !r.started {
		return false
	}
	// Generations older than latest − G + 1 are out of the window.
	skip := max(r.gen(now)-r.cur, 0)
	for i := int64(0); i < int64(len(r.gens))-skip; i++ {
		if r.gens[i].TestString(item) {
			return true
		}
	}
	return false
}

// TestAndAdd reports whether item may have been added within the window, then adds it at now.
func (r *RotatingBloom) TestAndAdd(item string, now int64) bool {
	r.Advance(now)
	seen := r.Test(item, now)
	r.Add(item, now)
	return seen
}

// Merge adds o's items to r, generation by generation, after moving r's time to the later
// of the two. Both must have the same span, number of generations and filter size;
// otherwise r is unchanged and the error wraps ErrIncompatible.
func (r *RotatingBloom) Merge(o *RotatingBloom) error {
	if r.span != o.span || len(r.gens) != len(o.gens) || r.gens[0].Cap() != o.gens[0].Cap() || r.gens[0].K() != o.gens[0].K() {
		return fmt.Errorf("merge rotating bloom (span %dms, %d generations, %d bits) with (span %dms, %d generations, %d bits): %w",
			r.span, len(r.gens), r.gens[0].Cap(), o.span, len(o.gens), o.gens[0].Cap(), ErrIncompatible)
	}
	if !o.started {
		return nil
	}
	r.Advance(o.cur * r.span)
	for i, f := range r.gens {
		if j := o.cur - (r.cur - int64(i)); j >= 0 && j < int64(len(o.gens)) {
			if err := f.Merge(o.gens[j]); err != nil {
				return fmt.Errorf("merge rotating bloom: %w", err)
			}
		}
	}
	return nil
}

// Clone returns a copy of r.
func (r *RotatingBloom) Clone() *RotatingBloom {
	c := &RotatingBloom{span: r.span, cur: r.cur, started: r.started, gens: make([]*bloom.BloomFilter, len(r.gens))}
	for i, f := range r.gens {
		c.gens[i] = f.Copy()
	}
	return c
}

// MarshalBinary encodes the filter: span, generations, current generation, then each
// generation's filter.
func (r *RotatingBloom) MarshalBinary() ([]byte, error) {
	words := len(r.gens[0].BitSet().Words())
	b := header(kindRotatingBloom, 18+len(r.gens)*(12+8*words))
	b = appendU64(b, uint64(r.span))
	b = append(b, byte(len(r.gens)))
	b = appendU64(b, uint64(r.cur))
	started := byte(0)
	if r.started {
		started = 1
	}
	b = append(b, started)
	for _, f := range r.gens {
		b = appendFilter(b, f)
	}
	return seal(b), nil
}

// UnmarshalBinary replaces r with the filter encoded in data. Bad data is an error and
// leaves r unchanged.
func (r *RotatingBloom) UnmarshalBinary(data []byte) error {
	d, err := open(data, kindRotatingBloom)
	if err != nil {
		return err
	}
	span, g, cur, started := int64(d.u64()), int(d.u8()), int64(d.u64()), d.u8()
	if d.err != nil {
		return d.err
	}
	switch {
	case span < 1:
		return fmt.Errorf("unmarshal rotating bloom: span %dms: want at least 1ms", span)
	case g < 2 || g > 64:
		return fmt.Errorf("unmarshal rotating bloom: %d generations: want 2 to 64", g)
	case started > 1:
		return fmt.Errorf("unmarshal rotating bloom: started flag %d, want 0 or 1", started)
	}
	gens := make([]*bloom.BloomFilter, g)
	for i := range gens {
		gens[i] = readFilter(d)
		if d.err != nil {
			return fmt.Errorf("generation %d: %w", i, d.err)
		}
		if gens[i].Cap() != gens[0].Cap() || gens[i].K() != gens[0].K() {
			return fmt.Errorf("unmarshal rotating bloom: generation %d has %d bits and %d hashes, generation 0 %d and %d", i, gens[i].Cap(), gens[i].K(), gens[0].Cap(), gens[0].K())
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	*r = RotatingBloom{span: span, gens: gens, cur: cur, started: started == 1}
	return nil
}
