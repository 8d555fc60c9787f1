package sketches

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"testing"
)

// parts splits items into n contiguous parts.
func parts(items []string, n int) [][]string {
	var out [][]string
	for i := range n {
		out = append(out, items[i*len(items)/n:(i+1)*len(items)/n])
	}
	return out
}

func TestCountMinMerge(t *testing.T) {
	d := newDataset("zipf", zipfRanks(size(200_000, 50_000), 100_000, 5))
	for _, cons := range []bool{false, true} {
		cfg := CountMinConfig{Epsilon: 0.001, Delta: 0.01, Conservative: cons}
		whole, _ := NewCountMin(cfg)
		merged, _ := NewCountMin(cfg)
		for _, it := range d.items {
			whole.Add(it)
		}
		for _, p := range parts(d.items, 4) {
			s, _ := NewCountMin(cfg)
			for _, it := range p {
				s.Add(it)
			}
			if err := merged.Merge(s); err != nil {
				t.Fatal(err)
			}
		}
		if merged.N() != whole.N() {
			t.Fatalf("merged N %d, whole %d", merged.N(), whole.N())
		}
		if !cons && !slices.Equal(merged.counts, whole.counts) {
			t.Fatalf("plain count-min: the merge of the parts differs from the sketch of the whole")
		}
		bound := uint64(math.Ceil(0.001 * float64(merged.N())))
		for it, c := range d.exact {
			if e := merged.Estimate(it); e < c || e-c > bound {
				t.Fatalf("conservative=%v: merged estimate %d of %q outside [%d, %d]", cons, e, it, c, c+bound)
			}
		}
	}
	a, _ := NewCountMin(CountMinConfig{Epsilon: 0.01})
	b, _ := NewCountMin(CountMinConfig{Epsilon: 0.02})
	c, _ := NewCountMin(CountMinConfig{Epsilon: 0.01, Conservative: true})
	for _, o := range []*CountMin{b, c} {
		if err := a.Merge(o); !errors.Is(err, ErrIncompatible) {
			t.Errorf("merge of mismatched count-min: %v, want ErrIncompatible", err)
		}
	}
}

func TestHyperLogLogMerge(t *testing.T) {
	for _, n := range []int{500, 3_000, 50_000, 300_000} {
		whole, _ := NewHyperLogLog(HyperLogLogConfig{})
		items := make([]string, n)
		for i := range items {
			items[i] = "u" + strconv.Itoa(i)
			whole.Add(items[i])
		}
		// Parts of different sizes: some stay sparse, some go dense.
		merged, _ := NewHyperLogLog(HyperLogLogConfig{})
		for _, p := range [][]string{items[:n/10], items[n/10 : n/2], items[n/2:]} {
			s, _ := NewHyperLogLog(HyperLogLogConfig{})
			for _, it := range p {
				s.Add(it)
			}
			if err := merged.Merge(s); err != nil {
				t.Fatal(err)
			}
		}
		if merged.Estimate() != whole.Estimate() {
			t.Errorf("%d distinct: merged estimate %d, whole %d", n, merged.Estimate(), whole.Estimate())
		}
		// Merged the other way: a dense sketch into a sparse one.
		small, _ := NewHyperLogLog(HyperLogLogConfig{})
		small.Add("u0")
		if err := small.Merge(whole); err != nil {
			t.Fatal(err)
		}
		if small.Estimate() != whole.Estimate() {
			t.Errorf("%d distinct: sparse merged with whole: %d, want %d", n, small.Estimate(), whole.Estimate())
		}
	}
	a, _ := NewHyperLogLog(HyperLogLogConfig{Precision: 12})
	b, _ := NewHyperLogLog(HyperLogLogConfig{Precision: 14})
	if err := a.Merge(b); !errors.Is(err, ErrIncompatible) {
		t.Errorf("merge of precision 12 and 14: %v, want ErrIncompatible", err)
	}
}

func TestBloomMerge(t *testing.T) {
	cfg := BloomConfig{Capacity: 10_000, FalsePositive: 0.01}
	whole, _ := NewBloom(cfg)
	merged, _ := NewBloom(cfg)
	for p := range 3 {
		s, _ := NewBloom(cfg)
		for i := range 3000 {
			it := strconv.Itoa(p) + "-" + strconv.Itoa(i)
			s.Add(it)
			whole.Add(it)
		}
		if err := merged.Merge(s); err != nil {
			t.Fatal(err)
		}
	}
	wb, _ := whole.MarshalBinary()
	mb, _ := merged.MarshalBinary()
	if !bytes.Equal(wb, mb) {
		t.Error("the merge of the parts differs from the filter of the whole")
	}
	other, _ := NewBloom(BloomConfig{Capacity: 20_000})
	if err := merged.Merge(other); !errors.Is(err, ErrIncompatible) {
		t.Errorf("merge of different sizes: %v, want ErrIncompatible", err)
	}
}

func TestRotatingBloomMerge(t *testing.T) {
	cfg := RotatingBloomConfig{Window: 1e9, Generations: 3, Capacity: 1000}
	a, _ := NewRotatingBloom(cfg) // span 500ms
	b, _ := NewRotatingBloom(cfg)
	a.Add("a-old", 100)
	a.Add("a-new", 1200)
	b.Add("b-old", 300)  // generation 0: out of the window at generation 2+... kept at 1200
	b.Add("b-new", 1700) // b is ahead: merging moves a to generation 3
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	for item, want := range map[string]bool{"a-old": false, "b-old": false, "a-new": true, "b-new": true} {
		if got := a.Test(item, 1700); got != want {
			t.Errorf("after merge, Test(%q) = %v, want %v", item, got, want)
		}
	}
	// Merging into an empty filter copies.
	e, _ := NewRotatingBloom(cfg)
	if err := e.Merge(a); err != nil || !e.Test("b-new", 1700) {
		t.Errorf("merge into an empty filter: %v, b-new present %v", err, e.Test("b-new", 1700))
	}
	other, _ := NewRotatingBloom(RotatingBloomConfig{Window: 2e9, Generations: 3, Capacity: 1000})
	if err := a.Merge(other); !errors.Is(err, ErrIncompatible) {
		t.Errorf("merge of different spans: %v, want ErrIncompatible", err)
	}
}

func TestTopKMerge(t *testing.T) {
	d := newDataset("zipf", zipfRanks(size(500_000, 100_000), 100_000, 13))
	cfg := TopKConfig{Capacity: 500}
	merged, _ := NewTopK(cfg)
	for _, p := range parts(d.items, 4) {
		s, _ := NewTopK(cfg)
		for _, it := range p {
			s.Add(it)
		}
		if err := merged.Merge(s); err != nil {
			t.Fatal(err)
		}
	}
	if merged.N() != uint64(len(d.items)) {
		t.Fatalf("merged N %d, want %d", merged.N(), len(d.items))
	}
	checkTopKBounds(t, merged, d.exact)
	if r := recall(merged.Top(50), exactTop(d.exact, 50)); r < 0.9 {
		t.Errorf("merged top 50: recall %.3f below 0.9", r)
	}
	// Merging small, unfilled sketches is exact.
	a, _ := NewTopK(cfg)
	b, _ := NewTopK(cfg)
	a.AddN("x", 3)
	a.AddN("y", 1)
	b.AddN("x", 2)
	b.AddN("z", 7)
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	want := []Item{{Item: "z", Count: 7}, {Item: "x", Count: 5}, {Item: "y", Count: 1}}
	if got := a.Top(10); !slices.Equal(got, want) {
		t.Errorf("merged top = %v, want %v", got, want)
	}
	c, _ := NewTopK(TopKConfig{Capacity: 10})
	if err := a.Merge(c); !errors.Is(err, ErrIncompatible) {
		t.Errorf("merge of different capacities: %v, want ErrIncompatible", err)
	}
}

func TestQuantilesMerge(t *testing.T) {
	n := size(400_000, 100_000)
	ranks := uniformRanks(n, 1<<30, 17)
	vals := make([]float64, n)
	for i, r := range ranks {
		vals[i] = float64(r)
	}
	merged, _ := NewQuantiles(QuantilesConfig{})
	for p := range 8 {
		s, _ := NewQuantiles(QuantilesConfig{})
		for _, v := range vals[p*n/8 : (p+1)*n/8] {
			s.Add(v)
		}
		if err := merged.Merge(s); err != nil {
			t.Fatal(err)
		}
	}
	sorted := slices.Clone(vals)
	slices.Sort(sorted)
	if merged.N() != uint64(n) || merged.Min() != sorted[0] || merged.Max() != sorted[n-1] {
		t.Fatalf("merged N, min, max = %d, %v, %v; want %d, %v, %v", merged.N(), merged.Min(), merged.Max(), n, sorted[0], sorted[n-1])
	}
	for i := 1; i < 100; i++ {
		q := float64(i) / 100
		if e := rankError(sorted, merged.Quantile(q), q); e > 0.01 {
			t.Errorf("merged quantile %v: rank error %.4f", q, e)
		}
	}
	o, _ := NewQuantiles(QuantilesConfig{K: 100})
	if err := merged.Merge(o); !errors.Is(err, ErrIncompatible) {
		t.Errorf("merge of different k: %v, want ErrIncompatible", err)
	}
}
