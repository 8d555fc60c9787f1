package sketches

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// QuantilesConfig sizes a quantile sketch.
type QuantilesConfig struct {
	// K sets the size of the top compactor; the sketch keeps about 3K values, and its
	// rank error shrinks as 1/K. 16 to 65,535; 0 means 400: rank error well under 1% (the
	// tests see < 0.5%), about 10 KB.
	K int
}

const (
	defaultKLLK = 400
	minKLLK     = 16
	maxKLLK     = 1<<16 - 1
	// kllMinWidth is the smallest capacity of a compactor.
	kllMinWidth = 8
)

func (c *QuantilesConfig) validate() error {
	if c.K == 0 {
		c.K = defaultKLLK
	}
	if c.K < minKLLK || c.K > maxKLLK {
		return fmt.Errorf("quantiles: k %d: want %d to %d", c.K, minKLLK, maxKLLK)
	}
	return nil
}

// Quantiles estimates quantiles and ranks of a stream of float64 with a KLL sketch (Karnin,
// Lang and Liberty, 2016): a stack of compactors, level h holding values of weight 2^h and
// room for about K·(2/3)^(H−1−h) of them; a full compactor sorts itself and promotes every
// other value, starting at a random offset, to the level above. The normalised rank error
// falls as 1/K: Apache DataSketches' KLL measures 1.33% at K = 200 (99% confidence, one
// query), so about 0.7% at the default K = 400, and the tests here see at most 0.3% over
// 103 quantiles of 1,000,000 uniform or Zipf values. The bound is the same at every rank
// and holds after merging. The smallest and largest values are kept exactly. Memory is
// about 3K values (K = 400: 1,200 values, 10 KB).
//
// The coin flips come from a generator in the sketch, seeded with a constant, so a run is
// reproducible and the state survives serialisation. NaN values are ignored.
//
// A Quantiles is not safe for concurrent use.
type Quantiles struct {
	k        int
	n        uint64
	min, max float64
	levels   [][]float64
	size     int // values held, over all levels
	rng      uint64
}

// NewQuantiles returns an empty sketch.
func NewQuantiles(cfg QuantilesConfig) (*Quantiles, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Quantiles{k: cfg.K, levels: [][]float64{nil}, rng: 0x9e3779b97f4a7c15, min: math.Inf(1), max: math.Inf(-1)}, nil
}

// K returns the sketch's K.
func (s *Quantiles) K() int { return s.k }

// N returns the number of values added.
func (s *Quantiles) N() uint64 { return s.n }

// Min returns the smallest value added (+Inf when none).
func (s *Quantiles) Min() float64 { return s.min }

// Max returns the largest value added (−Inf when none).
func (s *Quantiles) Max() float64 { return s.max }

// capacity of level h when there are H levels.
func (s *Quantiles) capacity(h int) int {
	depth := len(s.levels) - 1 - h
	c := float64(s.k) * math.Pow(2.0/3.0, float64(depth))
	return max(kllMinWidth, int(math.Ceil(c)))
}

func (s *Quantiles) maxSize() int {
	t := 0
	for h := range s.levels {
		t += s.capacity(h)
	}
	return t
}

// coin returns a random bit (xorshift64*).
func (s *Quantiles) coin() int {
	x := s.rng
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	s.rng = x
	return int((x * 0x2545f4914f6cdd1d) >> 63)
}

// Add adds v; NaN is ignored.
func (s *Quantiles) Add(v float64) {
	if math.IsNaN(v) {
		return
	}
	s.n++
	s.min = min(s.min, v)
	s.max = max(s.max, v)
	s.levels[0] = append(s.levels[0], v)
	s.size++
	if s.size >= s.maxSize() {
		s.compress()
	}
}

// compress compacts the lowest full level until the sketch is within its capacity.
func (s *Quantiles) compress() {
	for s.size >= s.maxSize() {
		h := 0
		for h < len(s.levels) && len(s.levels[h]) < s.capacity(h) {
			h++
		}
		if h == len(s.levels) {
			return // cannot happen: the capacities sum to maxSize
		}
		s.compact(h)
	}
}

// compact halves level h into level h+1.
func (s *Quantiles) compact(h int) {
	if h+1 == len(s.levels) {
		s.levels = append(s.levels, nil)
	}
	lv := s.levels[h]
	slices.Sort(lv)
	var keep []float64
	if len(lv)%2 == 1 {
		// An odd value out stays behind: the smallest or the largest, by a coin.
		if s.coin() == 0 {
			keep, lv = lv[:1], lv[1:]
		} else {
			keep, lv = lv[len(lv)-1:], lv[:len(lv)-1]
		}
	}
	up := s.levels[h+1]
	for i := s.coin(); i < len(lv); i += 2 {
		up = append(up, lv[i])
	}
	s.levels[h+1] = up
	s.size -= len(lv) / 2
	s.levels[h] = append(s.levels[h][:0], keep...)
}

type weighted struct {
	v float64
	w uint64
}

func (s *Quantiles) sorted() []weighted {
	out := make([]weighted, 0, s.size)
	for h, lv := range s.levels {
		for _, v := range lv {
			out = append(out, weighted{v, 1 << h})
		}
	}
	slices.SortFunc(out, func(a, b weighted) int { return cmp.Compare(a.v, b.v) })
	return out
}

// Rank returns the estimated fraction of values ≤ v, in [0, 1]; 0 for an empty sketch.
func (s *Quantiles) Rank(v float64) float64 {
	if s.n == 0 {
		return 0
	}
	var r uint64
	for h, lv := range s.levels {
		for _, x := range lv {
			if x <= v {
				r += 1 << h
			}
		}
	}
	return float64(r) / float64(s.n)
}

// Quantile returns the estimated q-quantile, q in [0, 1]: the smallest value held whose
// estimated rank reaches q. Quantile(0) is Min and Quantile(1) is Max. It returns NaN for
// an empty sketch or a q outside [0, 1].
func (s *Quantiles) Quantile(q float64) float64 { return s.Quantiles(q)[0] }

// Quantiles returns the estimated quantile of each of qs, sorting the sketch once.
func (s *Quantiles) Quantiles(qs ...float64) []float64 {
	out := make([]float64, len(qs))
	if s.n == 0 {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	all := s.sorted()
	for i, q := range qs {
		switch {
		case !(q >= 0 && q <= 1):
			out[i] = math.NaN()
		case q == 0:
			out[i] = s.min
		case q == 1:
			out[i] = s.max
		default:
			target := q * float64(s.n)
			var cum uint64
			out[i] = s.max
			for _, x := range all {
				cum += x.w
				if float64(cum) >= target {
					out[i] = x.v
					break
				}
			}
		}
	}
	return out
}

// Merge adds o's values to s. Both must have the same K; otherwise s is unchanged and the
// error wraps ErrIncompatible. The merged sketch has the error bound of one sketch of N
// values.
func (s *Quantiles) Merge(o *Quantiles) error {
	if s.k != o.k {
		return fmt.Errorf("merge quantiles of k %d with one of k %d: %w", s.k, o.k, ErrIncompatible)
	}
	if o.n == 0 {
		return nil
	}
	for len(s.levels) < len(o.levels) {
		s.levels = append(s.levels, nil)
	}
	for h, lv := range o.levels {
		s.levels[h] = append(s.levels[h], lv...)
		s.size += len(lv)
	}
	s.n += o.n
	s.min = min(s.min, o.min)
	s.max = max(s.max, o.max)
	s.rng ^= mix64(o.rng)
	if s.rng == 0 {
		s.rng = 0x9e3779b97f4a7c15
	}
	s.compress()
	return nil
}

// Clone returns a copy of s.
func (s *Quantiles) Clone() *Quantiles {
	c := *s
	c.levels = make([][]float64, len(s.levels))
	for h, lv := range s.levels {
		c.levels[h] = slices.Clone(lv)
	}
	return &c
}

// MarshalBinary encodes the sketch: K, N, min, max, the generator's state, then each level's
// values.
func (s *Quantiles) MarshalBinary() ([]byte, error) {
	b := header(kindQuantiles, 37+4*len(s.levels)+8*s.size)
	b = appendU32(b, uint32(s.k))
	b = appendU64(b, s.n)
	b = appendF64(b, s.min)
	b = appendF64(b, s.max)
	b = appendU64(b, s.rng)
	b = append(b, byte(len(s.levels)))
	for _, lv := range s.levels {
		b = appendU32(b, uint32(len(lv)))
		for _, v := range lv {
			b = appendF64(b, v)
		}
	}
	return seal(b), nil
}

// UnmarshalBinary replaces s with the sketch encoded in data. Bad data is an error and
// leaves s unchanged.
func (s *Quantiles) UnmarshalBinary(data []byte) error {
	d, err := open(data, kindQuantiles)
	if err != nil {
		return err
	}
	k, n, lo, hi, rng, nl := int(d.u32()), d.u64(), d.f64(), d.f64(), d.u64(), int(d.u8())
	if d.err != nil {
		return d.err
	}
	switch {
	case k < minKLLK || k > maxKLLK:
		return fmt.Errorf("unmarshal quantiles: k %d: want %d to %d", k, minKLLK, maxKLLK)
	case nl < 1 || nl > 64:
		return fmt.Errorf("unmarshal quantiles: %d levels: want 1 to 64", nl)
	case rng == 0:
		return fmt.Errorf("unmarshal quantiles: zero generator state")
	case n == 0 && (lo != math.Inf(1) || hi != math.Inf(-1)):
		return fmt.Errorf("unmarshal quantiles: empty sketch with min %v and max %v", lo, hi)
	case n > 0 && !(lo <= hi):
		return fmt.Errorf("unmarshal quantiles: min %v above max %v", lo, hi)
	}
	ns := Quantiles{k: k, n: n, min: lo, max: hi, rng: rng, levels: make([][]float64, nl)}
	var weight uint64
	for h := range ns.levels {
		c := d.count("values", 8)
		if d.err != nil {
			return d.err
		}
		lv := make([]float64, c)
		for i := range lv {
			v := d.f64()
			if !(v >= lo && v <= hi) {
				return fmt.Errorf("unmarshal quantiles: level %d value %d is %v, outside [min %v, max %v]", h, i, v, lo, hi)
			}
			lv[i] = v
		}
		ns.levels[h] = lv
		ns.size += c
		w := uint64(c) << h
		if c > 0 && (w>>h != uint64(c) || weight+w < weight) {
			return fmt.Errorf("unmarshal quantiles: the weights of the levels overflow")
		}
		weight += w
	}
	if weight != n {
		return fmt.Errorf("unmarshal quantiles: the levels weigh %d, but n is %d", weight, n)
	}
	if err := d.end(); err != nil {
		return err
	}
	*s = ns
	return nil
}
