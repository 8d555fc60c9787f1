package sketches

import (
	"fmt"
	"math"

	"github.com/bits-and-blooms/bloom/v3"
)

// BloomConfig sizes a Bloom filter.
type BloomConfig struct {
	// Capacity is the number of distinct items the filter is sized for: past it the false
	// positive rate climbs above FalsePositive. Memory is about
	// −Capacity·ln(FalsePositive)/ln²2 bits (1,000,000 at 1%: 1.2 MB). 0 means 100,000.
	Capacity uint
	// FalsePositive is the target probability that Test reports an item never added, once
	// Capacity items are in. 0 means 0.01.
	FalsePositive float64
}

// maxBloomBits bounds the size of a Bloom filter (512 MiB).
const maxBloomBits = 1 << 32

func (c *BloomConfig) validate(what string) error {
	if c.Capacity == 0 {
		c.Capacity = 100_000
	}
	if c.FalsePositive == 0 {
		c.FalsePositive = 0.01
	}
	if !(c.FalsePositive > 0 && c.FalsePositive < 1) {
		return fmt.Errorf("%s: false-positive rate %v: want it in (0, 1)", what, c.FalsePositive)
	}
	if m, _ := bloom.EstimateParameters(c.Capacity, c.FalsePositive); m > maxBloomBits {
		return fmt.Errorf("%s: capacity %d at false-positive rate %v needs %d bits, more than %d", what, c.Capacity, c.FalsePositive, m, uint64(maxBloomBits))
	}
	return nil
}

// Bloom is a Bloom filter for set membership (github.com/bits-and-blooms/bloom/v3): m bits
// and k hash functions chosen for a capacity n and a false-positive target p, m =
// ⌈−n·ln p/ln²2⌉ and k = ⌈ln 2·m/n⌉. Test never reports false for an added item; for an
// item never added it reports true with probability about (1 − e^(−k·n/m))^k, which is
// about p when n items are in.
//
// A Bloom is not safe for concurrent use.
type Bloom struct {
	f *bloom.BloomFilter
	n uint64 // items added, duplicates included
}

// NewBloom returns an empty filter.
func NewBloom(cfg BloomConfig) (*Bloom, error) {
	if err := cfg.validate("bloom"); err != nil {
		return nil, err
	}
	return &Bloom{f: bloom.NewWithEstimates(cfg.Capacity, cfg.FalsePositive)}, nil
}

// Add adds item.
func (b *Bloom) Add(item string) {
	b.f.AddString(item)
	b.n++
}

// Test reports whether item may have been added: false means it certainly was not.
func (b *Bloom) Test(item string) bool { return b.f.TestString(item) }

// TestAndAdd adds item and reports whether it may have been added before.
func (b *Bloom) TestAndAdd(item string) bool {
	b.n++
	return b.f.TestAndAddString(item)
}

// Bits returns m, the number of bits.
func (b *Bloom) Bits() uint { return b.f.Cap() }

// Hashes returns k, the number of hash functions.
func (b *Bloom) Hashes() uint { return b.f.K() }

// Added returns how many Adds the filter has seen, duplicates included.
func (b *Bloom) Added() uint64 { return b.n }

// FalsePositiveRate returns the expected false-positive rate after n distinct items:
// (1 − e^(−k·n/m))^k.
func (b *Bloom) FalsePositiveRate(n uint) float64 {
	k, m := float64(b.f.K()), float64(b.f.Cap())
	return math.Pow(1-math.Exp(-k*float64(n)/m), k)
}

// Merge adds o's items to b (a bitwise or). Both must have the same m and k; otherwise b is
// unchanged and the error wraps ErrIncompatible. The merge equals the filter of both sets.
func (b *Bloom) Merge(o *Bloom) error {
	if b.f.Cap() != o.f.Cap() || b.f.K() != o.f.K() {
		return fmt.Errorf("merge bloom of %d bits, %d hashes with one of %d bits, %d hashes: %w", b.f.Cap(), b.f.K(), o.f.Cap(), o.f.K(), ErrIncompatible)
	}
	if err := b.f.Merge(o.f); err != nil {
		return fmt.Errorf("merge bloom: %w", err)
	}
	b.n += o.n
	return nil
}

// Clone returns a copy of b.
func (b *Bloom) Clone() *Bloom { return &Bloom{f: b.f.Copy(), n: b.n} }

// Reset empties the filter.
func (b *Bloom) Reset() {
	b.f.ClearAll()
	b.n = 0
}

// MarshalBinary encodes the filter: m, k, the number of Adds and the bits.
func (b *Bloom) MarshalBinary() ([]byte, error) {
	words := b.f.BitSet().Words()
	out := header(kindBloom, 20+8*len(words))
	out = appendFilter(out, b.f)
	out = appendU64(out, b.n)
	return seal(out), nil
}

// UnmarshalBinary replaces b with the filter encoded in data. Bad data is an error and
// leaves b unchanged.
func (b *Bloom) UnmarshalBinary(data []byte) error {
	d, err := open(data, kindBloom)
	if err != nil {
		return err
	}
	f := readFilter(d)
	n := d.u64()
	if err := d.end(); err != nil {
		return err
	}
	*b = Bloom{f: f, n: n}
	return nil
}

// appendFilter appends m (u64), k (u32) and the ⌈m/64⌉ words of f's bits.
func appendFilter(b []byte, f *bloom.BloomFilter) []byte {
	b = appendU64(b, uint64(f.Cap()))
	b = appendU32(b, uint32(f.K()))
	words := f.BitSet().Words()
	need := int((f.Cap() + 63) / 64)
	for i := range need {
		var w uint64
		if i < len(words) {
			w = words[i]
		}
		b = appendU64(b, w)
	}
	return b
}

// readFilter reads what appendFilter wrote, checking m, k and the length first.
func readFilter(d *decoder) *bloom.BloomFilter {
	m, k := d.u64(), d.u32()
	if d.err != nil {
		return nil
	}
	switch {
	case m == 0 || m > maxBloomBits:
		d.fail("filter of %d bits: want 1 to %d", m, uint64(maxBloomBits))
		return nil
	case k == 0 || k > 64:
		d.fail("filter with %d hash functions: want 1 to 64", k)
		return nil
	}
	n := int((m + 63) / 64)
	if n*8 > len(d.b) {
		d.fail("filter of %d bits needs %d bytes, have %d", m, n*8, len(d.b))
		return nil
	}
	words := d.words(n)
	if d.err != nil {
		return nil
	}
	if r := m % 64; r != 0 {
		words[n-1] &= 1<<r - 1 // bits past m are never set
	}
	return bloom.FromWithM(words, uint(m), uint(k))
}
