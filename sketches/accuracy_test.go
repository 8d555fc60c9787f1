package sketches

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"testing"
)

// Count-Min: every estimate is at least the true count, and the fraction of items whose
// estimate exceeds it by more than ε·N is at most δ.
func TestCountMinAccuracy(t *testing.T) {
	n := size(1_000_000, 200_000)
	for _, d := range datasets(n) {
		for _, cons := range []bool{false, true} {
			cfg := CountMinConfig{Epsilon: 0.001, Delta: 0.01, Conservative: cons}
			s, err := NewCountMin(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range d.items {
				s.Add(it)
			}
			bound := uint64(math.Ceil(cfg.Epsilon * float64(n)))
			var over, worst uint64
			for it, c := range d.exact {
				e := s.Estimate(it)
				if e < c {
					t.Fatalf("%s: estimate %d of %q below its true count %d", d.name, e, it, c)
				}
				worst = max(worst, e-c)
				if e-c > bound {
					over++
				}
			}
			frac := float64(over) / float64(len(d.exact))
			t.Logf("%s conservative=%v: N=%d, %d items, ε·N=%d, worst error %d, %.4f%% over ε·N", d.name, cons, n, len(d.exact), bound, worst, 100*frac)
			if frac > cfg.Delta {
				t.Errorf("%s conservative=%v: %.4f of items over ε·N, more than δ=%v", d.name, cons, frac, cfg.Delta)
			}
		}
	}
}

// HyperLogLog: relative error within 2% at 1,000,000 distinct with the default precision,
// and at smaller counts too (where the sparse form is near exact).
func TestHyperLogLogAccuracy(t *testing.T) {
	for _, prefix := range []string{"user-", "x"} {
		s, err := NewHyperLogLog(HyperLogLogConfig{})
		if err != nil {
			t.Fatal(err)
		}
		checks := map[int]bool{10: true, 100: true, 1000: true, 4000: true, 10_000: true, 100_000: true, 1_000_000: true}
		for i := 1; i <= 1_000_000; i++ {
			s.Add(prefix + strconv.Itoa(i))
			// Add each item twice: duplicates must not count.
			if i%3 == 0 {
				s.Add(prefix + strconv.Itoa(i/3))
			}
			if checks[i] {
				est := s.Estimate()
				rel := math.Abs(float64(est)-float64(i)) / float64(i)
				t.Logf("%q: %d distinct: estimate %d, error %.3f%% (sparse %v)", prefix, i, est, 100*rel, s.sparse)
				if rel > 0.02 {
					t.Errorf("%q: %d distinct: estimate %d, relative error %.3f%% over 2%%", prefix, i, est, 100*rel)
				}
			}
		}
	}
}

// Bloom: the false-positive rate at capacity is within 1.5× its target.
func TestBloomFalsePositiveRate(t *testing.T) {
	n := size(200_000, 50_000)
	for _, fp := range []float64{0.01, 0.001} {
		b, err := NewBloom(BloomConfig{Capacity: uint(n), FalsePositive: fp})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			b.Add("in-" + strconv.Itoa(i))
		}
		for i := range n {
			if !b.Test("in-" + strconv.Itoa(i)) {
				t.Fatalf("false negative for in-%d", i)
			}
		}
		probes := 4 * n
		hits := 0
		for i := range probes {
			if b.Test("out-" + strconv.Itoa(i)) {
				hits++
			}
		}
		rate := float64(hits) / float64(probes)
		t.Logf("target %v: %d bits, %d hashes: false-positive rate %.5f (expected %.5f)", fp, b.Bits(), b.Hashes(), rate, b.FalsePositiveRate(uint(n)))
		if rate > 1.5*fp {
			t.Errorf("target %v: false-positive rate %.5f over 1.5× the target", fp, rate)
		}
	}
}

// Rotating Bloom: no false negatives within D, forgotten after D·G/(G−1), and a
// false-positive rate within 1.5× the target with Capacity items in the window.
func TestRotatingBloom(t *testing.T) {
	const d = 1000 // ms
	cfg := RotatingBloomConfig{Window: d * 1e6, Generations: 4, Capacity: 30_000, FalsePositive: 0.01}
	r, err := NewRotatingBloom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 30,000 items over 10 s: 3,000 per D, well within capacity.
	const total = 30_000
	at := func(i int) int64 { return int64(i) * 10_000 / total }
	for i := range total {
		now := at(i)
		r.Add("id-"+strconv.Itoa(i), now)
		// Every item added within the last D is present.
		for _, back := range []int{0, 1, 100, total / 10 * 99 / 100} {
			if j := i - back; j >= 0 && now-at(j) < d && !r.Test("id-"+strconv.Itoa(j), now) {
				t.Fatalf("at %dms: id-%d added at %dms (within D) tests absent", now, j, at(j))
			}
		}
	}
	end := at(total - 1)
	forget := int64(d*4/3 + 4)
	forgotten, kept := 0, 0
	for i := range total {
		if end-at(i) >= forget {
			forgotten++
			if r.Test("id-"+strconv.Itoa(i), end) {
				kept++
			}
		}
	}
	if rate := float64(kept) / float64(forgotten); rate > 1.5*cfg.FalsePositive {
		t.Errorf("%d of %d items older than D·G/(G−1) still test present (%.4f)", kept, forgotten, rate)
	}
	// False positives of items never added, against a full window.
	full, _ := NewRotatingBloom(RotatingBloomConfig{Window: d * 1e6, Generations: 4, Capacity: 30_000, FalsePositive: 0.01})
	for i := range 30_000 {
		full.Add("in-"+strconv.Itoa(i), int64(i)*d/30_000)
	}
	hits := 0
	const probes = 200_000
	for i := range probes {
		if full.Test("out-"+strconv.Itoa(i), d-1) {
			hits++
		}
	}
	rate := float64(hits) / probes
	t.Logf("rotating bloom: span %v, false-positive rate %.5f at capacity (target %v)", full.Span(), rate, cfg.FalsePositive)
	if rate > 1.5*cfg.FalsePositive {
		t.Errorf("false-positive rate %.5f over 1.5× the target %v", rate, cfg.FalsePositive)
	}
	// Time going back: an add older than every generation is dropped, one within is kept.
	r.Add("old", end-10*d)
	r.Add("recent", end-d/2)
	if r.Test("old", end) || !r.Test("recent", end) {
		t.Errorf("old: %v (want false), recent: %v (want true)", r.Test("old", end), r.Test("recent", end))
	}
}

func exactTop(exact map[string]uint64, k int) []Item {
	all := make([]Item, 0, len(exact))
	for it, c := range exact {
		all = append(all, Item{Item: it, Count: c})
	}
	slices.SortFunc(all, func(a, b Item) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Item, b.Item)
	})
	return all[:min(k, len(all))]
}

// recall is the fraction of want's items that got holds.
func recall(got, want []Item) float64 {
	in := map[string]bool{}
	for _, it := range got {
		in[it.Item] = true
	}
	hit := 0
	for _, it := range want {
		if in[it.Item] {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

// checkTopKBounds checks Count − Error ≤ true ≤ Count for every counter.
func checkTopKBounds(t *testing.T, s *TopK, exact map[string]uint64) {
	t.Helper()
	for _, it := range s.Top(-1) {
		if c := exact[it.Item]; c > it.Count || it.Count-it.Error > c {
			t.Fatalf("%q: count %d, error %d; true count %d is outside [count−error, count]", it.Item, it.Count, it.Error, c)
		}
	}
}

// Top-K: recall ≥ 0.9 on Zipf data, and the Space-Saving bounds hold.
func TestTopKRecall(t *testing.T) {
	n := size(1_000_000, 200_000)
	d := newDataset("zipf", zipfRanks(n, 100_000, 11))
	for _, k := range []int{10, 100} {
		s, err := NewTopK(TopKConfig{Capacity: 10 * k})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range d.items {
			s.Add(it)
		}
		checkTopKBounds(t, s, d.exact)
		got, want := s.Top(k), exactTop(d.exact, k)
		r := recall(got, want)
		exact := 0
		for i := range got {
			if got[i] == want[i] {
				exact++
			}
		}
		t.Logf("k=%d capacity=%d: recall %.3f, %d of the top %d exact and in order", k, 10*k, r, exact, k)
		if r < 0.9 {
			t.Errorf("k=%d: recall %.3f below 0.9", k, r)
		}
	}
}

// rankError is how far q is from the exact rank interval [below/N, atOrBelow/N] of v.
func rankError(sorted []float64, v, q float64) float64 {
	n := float64(len(sorted))
	lo := float64(sortSearch(sorted, v, false)) / n
	hi := float64(sortSearch(sorted, v, true)) / n
	switch {
	case q < lo:
		return lo - q
	case q > hi:
		return q - hi
	}
	return 0
}

// sortSearch counts the values < v, or ≤ v with orEqual.
func sortSearch(sorted []float64, v float64, orEqual bool) int {
	i, _ := slices.BinarySearchFunc(sorted, v, func(x, t float64) int {
		if x < t || (orEqual && x == t) {
			return -1
		}
		return 1
	})
	return i
}

// Quantiles: the rank error of every percentile is at most 1%.
func TestQuantilesRankError(t *testing.T) {
	n := size(1_000_000, 200_000)
	sets := map[string][]float64{}
	for name, ranks := range map[string][]uint64{"zipf": zipfRanks(n, 100_000, 3), "uniform": uniformRanks(n, 1<<40, 3)} {
		vals := make([]float64, n)
		for i, r := range ranks {
			vals[i] = float64(r)
		}
		sets[name] = vals
	}
	for name, vals := range sets {
		s, err := NewQuantiles(QuantilesConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			s.Add(v)
		}
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		qs := make([]float64, 0, 101)
		for i := 0; i <= 100; i++ {
			qs = append(qs, float64(i)/100)
		}
		qs = append(qs, 0.995, 0.999)
		worst := 0.0
		for i, v := range s.Quantiles(qs...) {
			e := rankError(sorted, v, qs[i])
			worst = max(worst, e)
			if e > 0.01 {
				t.Errorf("%s: quantile %v = %v has rank error %.4f", name, qs[i], v, e)
			}
		}
		// Rank, the other way round.
		for _, q := range []float64{0.1, 0.5, 0.9, 0.99} {
			v := sorted[int(q*float64(n))]
			r := s.Rank(v)
			lo, hi := float64(sortSearch(sorted, v, false))/float64(n), float64(sortSearch(sorted, v, true))/float64(n)
			if r < lo-0.01 || r > hi+0.01 {
				t.Errorf("%s: Rank(%v) = %.4f, exact in [%.4f, %.4f]", name, v, r, lo, hi)
			}
		}
		t.Logf("%s: N=%d, %d values held, worst rank error %.4f%%", name, n, s.size, 100*worst)
		if s.Quantile(0) != sorted[0] || s.Quantile(1) != sorted[n-1] {
			t.Errorf("%s: min/max %v/%v, want %v/%v", name, s.Quantile(0), s.Quantile(1), sorted[0], sorted[n-1])
		}
	}
}
