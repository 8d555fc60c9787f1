package sketches

import (
	"bytes"
	"encoding"
	"strconv"
	"strings"
	"testing"
)

type binarySketchValue interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// samples returns filled sketches of every kind, with a fresh empty one to decode into.
func samples(t testing.TB) []struct {
	name       string
	full, into binarySketchValue
} {
	cm, _ := NewCountMin(CountMinConfig{Epsilon: 0.05, Delta: 0.1})
	cmc, _ := NewCountMin(CountMinConfig{Epsilon: 0.05, Delta: 0.1, Conservative: true})
	hs, _ := NewHyperLogLog(HyperLogLogConfig{Precision: 8})
	hd, _ := NewHyperLogLog(HyperLogLogConfig{Precision: 6})
	bl, _ := NewBloom(BloomConfig{Capacity: 100})
	rb, _ := NewRotatingBloom(RotatingBloomConfig{Window: 1e9, Generations: 3, Capacity: 100})
	tk, _ := NewTopK(TopKConfig{Capacity: 8})
	qs, _ := NewQuantiles(QuantilesConfig{K: 16})
	for i := range 300 {
		it := "k" + strconv.Itoa(i%37)
		cm.Add(it)
		cmc.Add(it)
		hs.Add(it)
		hd.Add(strconv.Itoa(i))
		bl.Add(it)
		rb.Add(it, int64(i*5))
		tk.Add(it)
		qs.Add(float64(i % 91))
	}
	return []struct {
		name       string
		full, into binarySketchValue
	}{
		{"count-min", cm, &CountMin{}},
		{"count-min conservative", cmc, &CountMin{}},
		{"hyperloglog sparse", hs, &HyperLogLog{}},
		{"hyperloglog dense", hd, &HyperLogLog{}},
		{"bloom", bl, &Bloom{}},
		{"rotating bloom", rb, &RotatingBloom{}},
		{"top-k", tk, &TopK{}},
		{"quantiles", qs, &Quantiles{}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples(t) {
		b, err := s.full.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: marshal: %v", s.name, err)
		}
		if err := s.into.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: unmarshal: %v", s.name, err)
		}
		b2, _ := s.into.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Errorf("%s: marshal(unmarshal(b)) differs from b", s.name)
		}
		// Every corruption of one byte is an error (the checksum), never a panic.
		for i := range b {
			c := bytes.Clone(b)
			c[i] ^= 0x5a
			if err := s.into.UnmarshalBinary(c); err == nil {
				t.Errorf("%s: byte %d flipped: no error", s.name, i)
			}
		}
		// Truncations too.
		for n := range len(b) {
			if err := s.into.UnmarshalBinary(b[:n]); err == nil {
				t.Errorf("%s: truncated to %d bytes: no error", s.name, n)
			}
		}
	}
	// A sketch of one kind does not decode as another.
	hb, _ := samples(t)[2].full.MarshalBinary()
	if err := new(CountMin).UnmarshalBinary(hb); err == nil || !strings.Contains(err.Error(), "holds a hyperloglog") {
		t.Errorf("hyperloglog bytes into a count-min: %v", err)
	}
}

func TestRoundTripAnswers(t *testing.T) {
	s := samples(t)
	get := func(i int) binarySketchValue {
		b, _ := s[i].full.MarshalBinary()
		if err := s[i].into.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		return s[i].into
	}
	if a, b := s[0].full.(*CountMin), get(0).(*CountMin); a.Estimate("k3") != b.Estimate("k3") || a.N() != b.N() {
		t.Error("count-min answers differ after a round trip")
	}
	if a, b := s[3].full.(*HyperLogLog), get(3).(*HyperLogLog); a.Estimate() != b.Estimate() {
		t.Error("hyperloglog answers differ after a round trip")
	}
	if b := get(4).(*Bloom); !b.Test("k1") || b.Added() != 300 {
		t.Error("bloom answers differ after a round trip")
	}
	if a, b := s[5].full.(*RotatingBloom), get(5).(*RotatingBloom); a.Test("k1", 1500) != b.Test("k1", 1500) || !b.Test("k36", 1500) {
		t.Error("rotating bloom answers differ after a round trip")
	}
	a6, b6 := s[6].full.(*TopK), get(6).(*TopK)
	b6.Add("new")
	a6.Add("new")
	if x, y := a6.Top(8), b6.Top(8); len(x) != len(y) || x[0] != y[0] {
		t.Errorf("top-k differs after a round trip: %v vs %v", x, y)
	}
	if a, b := s[7].full.(*Quantiles), get(7).(*Quantiles); a.Quantile(0.5) != b.Quantile(0.5) {
		t.Error("quantiles differ after a round trip")
	}
}

func TestCodec(t *testing.T) {
	c := Codec[HyperLogLog]()
	h, _ := NewHyperLogLog(HyperLogLogConfig{})
	h.Add("a")
	b, err := c.Append([]byte(nil), h)
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Decode(b)
	if err != nil || back.Estimate() != 1 {
		t.Fatalf("decode: %v, estimate %v", err, back)
	}
	if nb, _ := c.Append(nil, nil); len(nb) != 0 {
		t.Errorf("nil encodes as %d bytes", len(nb))
	}
	if v, err := c.Decode(nil); v != nil || err != nil {
		t.Errorf("no bytes decode as %v, %v; want nil, nil", v, err)
	}
	if _, err := c.Decode([]byte("garbage!")); err == nil || !strings.Contains(err.Error(), "decode sketches.HyperLogLog") {
		t.Errorf("garbage decodes: %v", err)
	}
}
