package sketches

import (
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
)

// CountMinConfig sets the size of a Count-Min sketch.
type CountMinConfig struct {
	// Epsilon is the error bound as a fraction of the total count N: an estimate exceeds the
	// true count by more than Epsilon·N with probability at most Delta. The sketch has
	// ⌈e/Epsilon⌉ counters per row, so halving it doubles the memory. 0 means 0.001.
	Epsilon float64
	// Delta is the probability that an estimate misses the Epsilon·N bound. The sketch has
	// ⌈ln(1/Delta)⌉ rows, and each Add and Estimate touches every row. 0 means 0.01.
	Delta float64
	// Conservative turns on conservative update: Add raises only the counters that are at
	// the item's current minimum. Estimates are never worse and usually much better on
	// skewed data, at the price of a read before each write. Sketches of the two kinds do
	// not merge with each other.
	Conservative bool
}

// maxCountMinCounters bounds the size of a Count-Min sketch (1 GiB of counters).
const maxCountMinCounters = 1 << 27

func (c *CountMinConfig) validate() (width, depth int, err error) {
	if c.Epsilon == 0 {
		c.Epsilon = 0.001
	}
	if c.Delta == 0 {
		c.Delta = 0.01
	}
	switch {
	case !(c.Epsilon > 0 && c.Epsilon < 1):
		return 0, 0, fmt.Errorf("count-min: epsilon %v: want it in (0, 1)", c.Epsilon)
	case !(c.Delta > 0 && c.Delta < 1):
		return 0, 0, fmt.Errorf("count-min: delta %v: want it in (0, 1)", c.Delta)
	}
	w := math.Ceil(math.E / c.Epsilon)
	d := math.Ceil(math.Log(1 / c.Delta))
	if w*d > maxCountMinCounters {
		return 0, 0, fmt.Errorf("count-min: epsilon %v and delta %v need %.0f counters, more than %d", c.Epsilon, c.Delta, w*d, maxCountMinCounters)
	}
	return int(w), int(d), nil
}

// CountMin is a Count-Min sketch (Cormode and Muthukrishnan, 2005): a matrix of depth rows
// of width counters; an item adds to one counter per row and its estimate is the smallest
// of them. With width ⌈e/ε⌉ and depth ⌈ln(1/δ)⌉, an estimate f̂ of an item whose true
// count is f satisfies
//
//	f ≤ f̂ ≤ f + ε·N  with probability ≥ 1 − δ
//
// where N is the total count added. It never underestimates. Memory is 8·width·depth bytes
// (ε = 0.001, δ = 0.01: 2719 × 5 counters, 109 KB).
//
// A CountMin is not safe for concurrent use.
type CountMin struct {
	width, depth int
	conservative bool
	n            uint64
	counts       []uint64 // depth rows of width
}

// NewCountMin returns an empty Count-Min sketch.
func NewCountMin(cfg CountMinConfig) (*CountMin, error) {
	w, d, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &CountMin{width: w, depth: d, conservative: cfg.Conservative, counts: make([]uint64, w*d)}, nil
}

// Width returns the number of counters per row.
func (s *CountMin) Width() int { return s.width }

// Depth returns the number of rows.
func (s *CountMin) Depth() int { return s.depth }

// N returns the total count added.
func (s *CountMin) N() uint64 { return s.n }

// Epsilon returns the sketch's error bound as a fraction of N: e/width.
func (s *CountMin) Epsilon() float64 { return math.E / float64(s.width) }

// Add counts one occurrence of item.
func (s *CountMin) Add(item string) { s.AddN(item, 1) }

// AddN counts n occurrences of item.
func (s *CountMin) AddN(item string, n uint64) {
	h1 := xxhash.Sum64String(item)
	h2 := mix64(h1) | 1
	s.n += n
	w := uint64(s.width)
	if !s.conservative {
		for r := range s.depth {
			s.counts[r*s.width+int((h1+uint64(r)*h2)%w)] += n
		}
		return
	}
	least := uint64(math.MaxUint64)
	for r := range s.depth {
		least = min(least, s.counts[r*s.width+int((h1+uint64(r)*h2)%w)])
	}
	target := least + n
	for r := range s.depth {
		c := &s.counts[r*s.width+int((h1+uint64(r)*h2)%w)]
		*c = max(*c, target)
	}
}

// Estimate returns the estimated count of item: never below the true count, and above it by
// at most ε·N with probability ≥ 1 − δ.
func (s *CountMin) Estimate(item string) uint64 {
	h1 := xxhash.Sum64String(item)
	h2 := mix64(h1) | 1
	w := uint64(s.width)
	least := uint64(math.MaxUint64)
	for r := range s.depth {
		least = min(least, s.counts[r*s.width+int((h1+uint64(r)*h2)%w)])
	}
	return least
}

// Merge adds o's counts to s, as if s had seen o's items too. Both must have the same width,
// depth and update rule; otherwise s is unchanged and the error wraps ErrIncompatible. The
// merge of conservative sketches still never underestimates and keeps the ε·N bound of the
// total, though it may be less tight than one conservative sketch of the whole.
func (s *CountMin) Merge(o *CountMin) error {
	if s.width != o.width || s.depth != o.depth || s.conservative != o.conservative {
		return fmt.Errorf("merge count-min %dx%d (conservative %v) with %dx%d (conservative %v): %w",
			s.width, s.depth, s.conservative, o.width, o.depth, o.conservative, ErrIncompatible)
	}
	for i, c := range o.counts {
		s.counts[i] += c
	}
	s.n += o.n
	return nil
}

// Clone returns a copy of s.
func (s *CountMin) Clone() *CountMin {
	c := *s
	c.counts = append([]uint64(nil), s.counts...)
	return &c
}

// Reset empties the sketch, keeping its parameters.
func (s *CountMin) Reset() {
	clear(s.counts)
	s.n = 0
}

// MarshalBinary encodes the sketch: width, depth, update rule, N and the counters.
func (s *CountMin) MarshalBinary() ([]byte, error) {
	b := header(kindCountMin, 17+8*len(s.counts))
	b = appendU32(b, uint32(s.width))
	b = appendU32(b, uint32(s.depth))
	cons := byte(0)
	if s.conservative {
		cons = 1
	}
	b = append(b, cons)
	b = appendU64(b, s.n)
	for _, c := range s.counts {
		b = appendU64(b, c)
	}
	return seal(b), nil
}

// UnmarshalBinary replaces s with the sketch encoded in data. Bad data is an error and
// leaves s unchanged.
func (s *CountMin) UnmarshalBinary(data []byte) error {
	d, err := open(data, kindCountMin)
	if err != nil {
		return err
	}
	w, dep, cons, n := d.u32(), d.u32(), d.u8(), d.u64()
	if d.err != nil {
		return d.err
	}
	switch {
	case w == 0 || dep == 0:
		return fmt.Errorf("unmarshal count-min: %d×%d counters", w, dep)
	case uint64(w)*uint64(dep) > maxCountMinCounters:
		return fmt.Errorf("unmarshal count-min: %d×%d counters, more than %d", w, dep, maxCountMinCounters)
	case uint64(w)*uint64(dep)*8 != uint64(len(d.b)):
		return fmt.Errorf("unmarshal count-min: %d×%d counters need %d bytes, have %d", w, dep, uint64(w)*uint64(dep)*8, len(d.b))
	case cons > 1:
		return fmt.Errorf("unmarshal count-min: update rule %d, want 0 or 1", cons)
	}
	counts := d.words(int(w) * int(dep))
	if err := d.end(); err != nil {
		return err
	}
	*s = CountMin{width: int(w), depth: int(dep), conservative: cons == 1, n: n, counts: counts}
	return nil
}
