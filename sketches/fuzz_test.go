package sketches

import (
	"testing"
)

// Each fuzz test feeds its input to UnmarshalBinary twice: as it is, and sealed with a
// valid checksum (the input then stands for the version, kind and payload), so that the
// fuzzer gets past the checksum and into the payload checks. A decoded sketch must answer
// queries, take an Add and survive another round trip.

func fuzzSeeds(f *testing.F, s binarySketchValue) {
	b, err := s.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-4]) // unsealed, for the sealed path
	f.Add([]byte{})
	f.Add([]byte{formatVersion})
}

func fuzzDecode[S any, P interface {
	*S
	binarySketchValue
}](t *testing.T, data []byte, use func(P)) {
	for _, in := range [][]byte{data, seal(append([]byte(nil), data...))} {
		s := P(new(S))
		if err := s.UnmarshalBinary(in); err != nil {
			continue
		}
		use(s)
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("marshal of a decoded sketch: %v", err)
		}
		if err := P(new(S)).UnmarshalBinary(b); err != nil {
			t.Fatalf("a decoded, used and re-marshalled sketch does not decode: %v", err)
		}
	}
}

func FuzzCountMin(f *testing.F) {
	for _, s := range samples(f)[:2] {
		fuzzSeeds(f, s.full)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, func(s *CountMin) {
			s.Add("x")
			_ = s.Estimate("x")
			_ = s.Merge(s.Clone())
		})
	})
}

func FuzzHyperLogLog(f *testing.F) {
	for _, s := range samples(f)[2:4] {
		fuzzSeeds(f, s.full)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, func(s *HyperLogLog) {
			_ = s.Estimate()
			c := s.Clone()
			for i := range 100 {
				s.AddHash(uint64(i) * 0x9e3779b97f4a7c15)
			}
			_ = s.Merge(c)
			_ = s.Estimate()
		})
	})
}

func FuzzBloom(f *testing.F) {
	fuzzSeeds(f, samples(f)[4].full)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, func(s *Bloom) {
			s.Add("x")
			if !s.Test("x") {
				t.Fatal("false negative after decode")
			}
			_ = s.Merge(s.Clone())
		})
	})
}

func FuzzRotatingBloom(f *testing.F) {
	fuzzSeeds(f, samples(f)[5].full)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, func(s *RotatingBloom) {
			_ = s.Test("x", 0)
			_ = s.Merge(s.Clone())
			s.Add("x", 1<<40)
			if !s.Test("x", 1<<40) {
				t.Fatal("false negative after decode")
			}
		})
	})
}

func FuzzTopK(f *testing.F) {
	fuzzSeeds(f, samples(f)[6].full)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, func(s *TopK) {
			_ = s.Top(3)
			c := s.Clone()
			for i := range 20 {
				s.Add(string(rune('a' + i%5)))
			}
			_ = s.Merge(c)
			if len(s.Top(-1)) > s.Capacity() {
				t.Fatal("more counters than the capacity")
			}
		})
	})
}

func FuzzQuantiles(f *testing.F) {
	fuzzSeeds(f, samples(f)[7].full)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, func(s *Quantiles) {
			_ = s.Quantiles(0, 0.5, 1)
			_ = s.Rank(0)
			c := s.Clone()
			for i := range 200 {
				s.Add(float64(i))
			}
			_ = s.Merge(c)
			_ = s.Quantile(0.9)
		})
	})
}
