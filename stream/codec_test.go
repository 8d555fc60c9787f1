package stream

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

// roundTrip encodes every value of vs with CodecFor[T] and decodes it back; same says whether
// two values are the same (bit-equal for floats, so that NaN round-trips).
func roundTrip[T any](t *testing.T, vs []T, wantLen int, same func(a, b T) bool) {
	t.Helper()
	c, ok := CodecFor[T]()
	if !ok {
		t.Fatalf("CodecFor[%s]: no codec", reflect.TypeFor[T]())
	}
	for _, v := range vs {
		prefix := []byte("prefix")
		b, err := c.Append(prefix, v)
		if err != nil {
			t.Fatalf("Append(%v): %v", v, err)
		}
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("Append(%v) did not append to dst: %q", v, b)
		}
		enc := b[len("prefix"):]
		if wantLen >= 0 && len(enc) != wantLen {
			t.Errorf("Append(%v): %d bytes, want %d", v, len(enc), wantLen)
		}
		got, err := c.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Append(%v)): %v", v, err)
		}
		if !same(got, v) {
			t.Errorf("round trip of %v gave %v", v, got)
		}
	}
}

func eq[T comparable](a, b T) bool { return a == b }

func TestCodecForRoundTrip(t *testing.T) {
	f64same := func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
	f32same := func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"string", func(t *testing.T) {
			roundTrip(t, []string{"", "a", "héllo, 世界", "\x00\xff", string(make([]byte, 1000))}, -1, eq[string])
		}},
		{"bytes", func(t *testing.T) {
			roundTrip(t, [][]byte{{}, {0}, {0xff, 0, 1}, bytes.Repeat([]byte("x"), 1000)}, -1,
				func(a, b []byte) bool { return bytes.Equal(a, b) })
		}},
		{"bool", func(t *testing.T) { roundTrip(t, []bool{false, true}, 1, eq[bool]) }},
		{"int", func(t *testing.T) { roundTrip(t, []int{0, 1, -1, math.MinInt, math.MaxInt}, 8, eq[int]) }},
		{"int8", func(t *testing.T) { roundTrip(t, []int8{0, 1, -1, math.MinInt8, math.MaxInt8}, 8, eq[int8]) }},
		{"int16", func(t *testing.T) { roundTrip(t, []int16{0, -1, math.MinInt16, math.MaxInt16}, 8, eq[int16]) }},
		{"int32", func(t *testing.T) { roundTrip(t, []int32{0, -1, math.MinInt32, math.MaxInt32}, 8, eq[int32]) }},
		{"int64", func(t *testing.T) { roundTrip(t, []int64{0, -1, math.MinInt64, math.MaxInt64}, 8, eq[int64]) }},
		{"uint", func(t *testing.T) { roundTrip(t, []uint{0, 1, math.MaxUint}, 8, eq[uint]) }},
		{"uint8", func(t *testing.T) { roundTrip(t, []uint8{0, 1, math.MaxUint8}, 8, eq[uint8]) }},
		{"uint16", func(t *testing.T) { roundTrip(t, []uint16{0, 1, math.MaxUint16}, 8, eq[uint16]) }},
		{"uint32", func(t *testing.T) { roundTrip(t, []uint32{0, 1, math.MaxUint32}, 8, eq[uint32]) }},
		{"uint64", func(t *testing.T) { roundTrip(t, []uint64{0, 1, math.MaxUint64}, 8, eq[uint64]) }},
		{"float32", func(t *testing.T) {
			roundTrip(t, []float32{0, float32(math.Copysign(0, -1)), 1.5, -1.5, math.MaxFloat32, math.SmallestNonzeroFloat32,
				float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}, 4, f32same)
		}},
		{"float64", func(t *testing.T) {
			roundTrip(t, []float64{0, math.Copysign(0, -1), 1.5, -1.5, math.MaxFloat64, math.SmallestNonzeroFloat64,
				math.Inf(1), math.Inf(-1), math.NaN(), math.Float64frombits(0x7ff8000000000001)}, 8, f64same)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestCodecForUnsupported(t *testing.T) {
	type named int
	if _, ok := CodecFor[named](); ok {
		t.Error("CodecFor[named int]: ok, want no codec")
	}
	if _, ok := CodecFor[struct{ A int }](); ok {
		t.Error("CodecFor[struct]: ok, want no codec")
	}
}

// decodeErr decodes src with CodecFor[T] and returns the error.
func decodeErr[T any](src []byte) error {
	c, _ := CodecFor[T]()
	_, err := c.Decode(src)
	return err
}

func TestCodecForDecodeErrors(t *testing.T) {
	tests := []struct {
		name      string
		decode    func([]byte) error
		src       []byte
		wantShort bool // want errors.Is(err, ErrShortInput)
	}{
		{"int empty", decodeErr[int], nil, true},
		{"int 7 bytes", decodeErr[int], make([]byte, 7), true},
		{"int 9 bytes", decodeErr[int], make([]byte, 9), true},
		{"uint64 7 bytes", decodeErr[uint64], make([]byte, 7), true},
		{"int8 overflow", decodeErr[int8], []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, false},
		{"int8 negative overflow", decodeErr[int8], []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
		{"uint8 overflow", decodeErr[uint8], []byte{0, 1, 0, 0, 0, 0, 0, 0}, false},
		{"uint16 from -1", decodeErr[uint16], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
		{"int32 overflow", decodeErr[int32], []byte{0, 0, 0, 0x80, 0, 0, 0, 0}, false},
		{"uint32 overflow", decodeErr[uint32], []byte{0, 0, 0, 0, 1, 0, 0, 0}, false},
		{"float64 empty", decodeErr[float64], nil, true},
		{"float64 4 bytes", decodeErr[float64], make([]byte, 4), true},
		{"float32 8 bytes", decodeErr[float32], make([]byte, 8), true},
		{"float32 3 bytes", decodeErr[float32], make([]byte, 3), true},
		{"bool empty", decodeErr[bool], nil, false},
		{"bool 2 bytes", decodeErr[bool], []byte{0, 0}, false},
		{"bool 2", decodeErr[bool], []byte{2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.src)
			if err == nil {
				t.Fatalf("Decode(%x): no error", tt.src)
			}
			if tt.wantShort && !errors.Is(err, ErrShortInput) {
				t.Errorf("Decode(%x) = %v, want ErrShortInput", tt.src, err)
			}
		})
	}
}

type codecPoint struct {
	Name  string            `json:"name"`
	X, Y  float64           `json:"-"`
	Tags  []string          `json:"tags"`
	Attrs map[string]int    `json:"attrs"`
	Next  *codecPoint       `json:"next,omitempty"`
	Raw   []byte            `json:"raw"`
	Kind  Kind              `json:"kind"`
	Pairs []KV[string, int] `json:"pairs"`
}

func TestJSONCodecRoundTrip(t *testing.T) {
	c := JSON[codecPoint]()
	tests := []codecPoint{
		{},
		{Name: "a", Tags: []string{"x", ""}, Attrs: map[string]int{"k": -1}, Raw: []byte{0, 0xff}, Kind: Retract},
		{Name: "héllo <b>&", Next: &codecPoint{Name: "inner"}, Pairs: []KV[string, int]{{"a", 1}, {"b", math.MaxInt}}},
	}
	for _, v := range tests {
		b, err := c.Append([]byte("x"), v)
		if err != nil {
			t.Fatalf("Append(%+v): %v", v, err)
		}
		if b[0] != 'x' {
			t.Fatalf("Append did not append to dst: %q", b)
		}
		got, err := c.Decode(b[1:])
		if err != nil {
			t.Fatalf("Decode(%s): %v", b[1:], err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %+v gave %+v", v, got)
		}
	}
}

func TestJSONCodecErrors(t *testing.T) {
	c := JSON[codecPoint]()
	for _, src := range []string{"", "{", `{"name": 1}`, `{"name": "a"} x`, "[1,2]", "\xff"} {
		if _, err := c.Decode([]byte(src)); err == nil {
			t.Errorf("Decode(%q): no error", src)
		}
	}
	if _, err := JSON[float64]().Append(nil, math.NaN()); err == nil {
		t.Error("JSON[float64].Append(NaN): no error")
	}
	if _, err := JSON[chan int]().Append(nil, make(chan int)); err == nil {
		t.Error("JSON[chan int].Append: no error")
	}
}

func fuzzCodec[T any](f *testing.F, same func(a, b T) bool) {
	c, ok := CodecFor[T]()
	if !ok {
		f.Fatalf("CodecFor[%s]: no codec", reflect.TypeFor[T]())
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		v, err := c.Decode(src)
		if err != nil {
			return
		}
		b, err := c.Append(nil, v)
		if err != nil {
			t.Fatalf("Append(Decode(%x) = %v): %v", src, v, err)
		}
		if !bytes.Equal(b, src) {
			t.Errorf("Append(Decode(%x)) = %x", src, b)
		}
		v2, err := c.Decode(b)
		if err != nil {
			t.Fatalf("Decode(Append(%v)): %v", v, err)
		}
		if !same(v, v2) {
			t.Errorf("Decode(Append(%v)) = %v", v, v2)
		}
	})
}

func FuzzIntCodecDecode(f *testing.F) {
	for _, s := range [][]byte{nil, {1}, make([]byte, 8), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 0, 0, 0, 0, 0x80}, make([]byte, 9)} {
		f.Add(s)
	}
	fuzzCodec(f, eq[int])
}

// FuzzInt8CodecDecode checks the overflow test of narrow integers.
func FuzzInt8CodecDecode(f *testing.F) {
	for _, s := range [][]byte{nil, {0x7f, 0, 0, 0, 0, 0, 0, 0}, {0x80, 0, 0, 0, 0, 0, 0, 0}, {0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		f.Add(s)
	}
	fuzzCodec(f, eq[int8])
}

func FuzzFloat64CodecDecode(f *testing.F) {
	for _, s := range [][]byte{nil, make([]byte, 8), {0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, {0, 0, 0, 0, 0, 0, 0xf0, 0xff}, {1, 2, 3}} {
		f.Add(s)
	}
	fuzzCodec(f, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })
}

func FuzzBoolCodecDecode(f *testing.F) {
	for _, s := range [][]byte{nil, {0}, {1}, {2}, {0, 1}} {
		f.Add(s)
	}
	fuzzCodec(f, eq[bool])
}

func FuzzJSONCodecDecode(f *testing.F) {
	for _, s := range []string{
		"", "null", "{}", `{"name":"a","tags":["x"],"attrs":{"k":1},"raw":"AP8=","kind":1}`,
		`{"name":"é\u00e9\ud800","next":{"name":"b","next":null}}`, `{"pairs":[{"key":"a","value":1}]}`,
		`{"name":1}`, `{"name":"a"} x`, "[", "\xff", `{"attrs":{"k":1e400}}`, `{"NAME":"case"}`,
	} {
		f.Add([]byte(s))
	}
	c := JSON[codecPoint]()
	f.Fuzz(func(t *testing.T, src []byte) {
		v, err := c.Decode(src)
		if err != nil {
			return
		}
		b, err := c.Append(nil, v)
		if err != nil {
			t.Fatalf("Append(Decode(%q) = %+v): %v", src, v, err)
		}
		v2, err := c.Decode(b)
		if err != nil {
			t.Fatalf("Decode(%q) (re-encoded from %q): %v", b, src, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Errorf("Decode(Append(%+v)) = %+v (src %q, re-encoded %q)", v, v2, src, b)
		}
	})
}
