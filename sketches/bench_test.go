package sketches

import (
	"strconv"
	"testing"
)

// benchItems are 65,536 Zipf-distributed items, shared by the benchmarks.
var benchItems = func() []string {
	out := make([]string, 1<<16)
	for i, r := range zipfRanks(len(out), 1_000_000, 1) {
		out[i] = "item-" + strconv.FormatUint(r, 10)
	}
	return out
}()

func BenchmarkCountMinAdd(b *testing.B) {
	for _, cons := range []bool{false, true} {
		b.Run("conservative="+strconv.FormatBool(cons), func(b *testing.B) {
			s, _ := NewCountMin(CountMinConfig{Conservative: cons})
			for i := 0; b.Loop(); i++ {
				s.Add(benchItems[i&(1<<16-1)])
			}
		})
	}
}

func BenchmarkCountMinEstimate(b *testing.B) {
	s, _ := NewCountMin(CountMinConfig{})
	for _, it := range benchItems {
		s.Add(it)
	}
	for i := 0; b.Loop(); i++ {
		_ = s.Estimate(benchItems[i&(1<<16-1)])
	}
}

func BenchmarkHyperLogLogAdd(b *testing.B) {
	b.Run("sparse", func(b *testing.B) {
		// A fresh sketch per 2,000 adds keeps it sparse.
		s, _ := NewHyperLogLog(HyperLogLogConfig{})
		for i := 0; b.Loop(); i++ {
			if i%2000 == 0 {
				s, _ = NewHyperLogLog(HyperLogLogConfig{})
			}
			s.Add(benchItems[i&(1<<16-1)])
		}
	})
	b.Run("dense", func(b *testing.B) {
		s, _ := NewHyperLogLog(HyperLogLogConfig{})
		for i := range 100_000 {
			s.Add(strconv.Itoa(i))
		}
		for i := 0; b.Loop(); i++ {
			s.Add(benchItems[i&(1<<16-1)])
		}
	})
}

func BenchmarkHyperLogLogEstimate(b *testing.B) {
	s, _ := NewHyperLogLog(HyperLogLogConfig{})
	for i := range 100_000 {
		s.Add(strconv.Itoa(i))
	}
	for b.Loop() {
		_ = s.Estimate()
	}
}

func BenchmarkBloomAdd(b *testing.B) {
	s, _ := NewBloom(BloomConfig{Capacity: 1_000_000})
	for i := 0; b.Loop(); i++ {
		s.Add(benchItems[i&(1<<16-1)])
	}
}

func BenchmarkBloomTest(b *testing.B) {
	s, _ := NewBloom(BloomConfig{Capacity: 1_000_000})
	for _, it := range benchItems {
		s.Add(it)
	}
	for i := 0; b.Loop(); i++ {
		_ = s.Test(benchItems[i&(1<<16-1)])
	}
}

func BenchmarkRotatingBloomAdd(b *testing.B) {
	s, _ := NewRotatingBloom(RotatingBloomConfig{Window: 1e9, Capacity: 1_000_000})
	for i := 0; b.Loop(); i++ {
		s.Add(benchItems[i&(1<<16-1)], int64(i/1000))
	}
}

func BenchmarkRotatingBloomTest(b *testing.B) {
	s, _ := NewRotatingBloom(RotatingBloomConfig{Window: 1e9, Capacity: 1_000_000})
	for i, it := range benchItems {
		s.Add(it, int64(i/100))
	}
	for i := 0; b.Loop(); i++ {
		_ = s.Test(benchItems[i&(1<<16-1)], 700)
	}
}

func BenchmarkTopKAdd(b *testing.B) {
	s, _ := NewTopK(TopKConfig{Capacity: 1000})
	for i := 0; b.Loop(); i++ {
		s.Add(benchItems[i&(1<<16-1)])
	}
}

func BenchmarkTopKTop10(b *testing.B) {
	s, _ := NewTopK(TopKConfig{Capacity: 1000})
	for _, it := range benchItems {
		s.Add(it)
	}
	for b.Loop() {
		_ = s.Top(10)
	}
}

func BenchmarkQuantilesAdd(b *testing.B) {
	s, _ := NewQuantiles(QuantilesConfig{})
	for i := 0; b.Loop(); i++ {
		s.Add(float64(i * 7919 % 100_003))
	}
}

func BenchmarkQuantilesQuantile(b *testing.B) {
	s, _ := NewQuantiles(QuantilesConfig{})
	for i := range 1_000_000 {
		s.Add(float64(i * 7919 % 100_003))
	}
	for b.Loop() {
		_ = s.Quantiles(0.5, 0.95, 0.99)
	}
}
