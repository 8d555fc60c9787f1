package operator

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/eddyflow/eddy/stream"
)

// le8 is the 8 little-endian bytes of v, computed here rather than by the codec under test.
func le8(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestKeyHasherMatchesXXHashOfCodecBytes(t *testing.T) {
	str := KeyHasher[string](nil)
	for _, s := range []string{"", "a", "user-42", "héllo, 世界", "\xff\x00"} {
		if got, want := str(s), xxhash.Sum64([]byte(s)); got != want {
			t.Errorf("string %q: hash %#x, want %#x", s, got, want)
		}
	}
	ints := []int64{0, 1, -1, 42, math.MinInt64, math.MaxInt64}
	for _, v := range ints {
		want := xxhash.Sum64(le8(uint64(v)))
		if got := KeyHasher[int](nil)(int(v)); got != want {
			t.Errorf("int %d: hash %#x, want %#x", v, got, want)
		}
		if got := KeyHasher[int64](nil)(v); got != want {
			t.Errorf("int64 %d: hash %#x, want %#x", v, got, want)
		}
		if got := KeyHasher[uint64](nil)(uint64(v)); got != want {
			t.Errorf("uint64 %d: hash %#x, want %#x", uint64(v), got, want)
		}
		if got := KeyHasher[uint](nil)(uint(v)); got != want {
			t.Errorf("uint %d: hash %#x, want %#x", uint(v), got, want)
		}
	}
	for _, v := range []int32{0, -1, 7, math.MinInt32, math.MaxInt32} {
		want := xxhash.Sum64(le8(uint64(int64(v))))
		if got := KeyHasher[int32](nil)(v); got != want {
			t.Errorf("int32 %d: hash %#x, want %#x", v, got, want)
		}
		if got := KeyHasher[int](nil)(int(v)); got != want {
			t.Errorf("int %d (from int32): hash %#x, want %#x", v, got, want)
		}
	}
	for _, v := range []int16{0, -1, math.MinInt16, math.MaxInt16} {
		if got, want := KeyHasher[int16](nil)(v), xxhash.Sum64(le8(uint64(int64(v)))); got != want {
			t.Errorf("int16 %d: hash %#x, want %#x", v, got, want)
		}
	}
	for _, v := range []uint32{0, 1, math.MaxUint32} {
		if got, want := KeyHasher[uint32](nil)(v), xxhash.Sum64(le8(uint64(v))); got != want {
			t.Errorf("uint32 %d: hash %#x, want %#x", v, got, want)
		}
	}
	for _, v := range []uint8{0, 1, math.MaxUint8} {
		if got, want := KeyHasher[uint8](nil)(v), xxhash.Sum64(le8(uint64(v))); got != want {
			t.Errorf("uint8 %d: hash %#x, want %#x", v, got, want)
		}
	}
	for _, v := range []float64{0, 1.5, -2, math.Inf(1), math.MaxFloat64} {
		if got, want := KeyHasher[float64](nil)(v), xxhash.Sum64(le8(math.Float64bits(v))); got != want {
			t.Errorf("float64 %v: hash %#x, want %#x", v, got, want)
		}
	}
	for _, v := range []float32{0, 1.5, float32(math.Inf(-1))} {
		if got, want := KeyHasher[float32](nil)(v), xxhash.Sum64(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v))); got != want {
			t.Errorf("float32 %v: hash %#x, want %#x", v, got, want)
		}
	}
	for _, v := range []bool{false, true} {
		b := []byte{0}
		if v {
			b[0] = 1
		}
		if got, want := KeyHasher[bool](nil)(v), xxhash.Sum64(b); got != want {
			t.Errorf("bool %v: hash %#x, want %#x", v, got, want)
		}
	}
}

func TestKeyHasherIsStableAcrossCalls(t *testing.T) {
	a, b := KeyHasher[string](nil), KeyHasher[string](nil)
	for i := range 1000 {
		k := string(rune('a'+i%26)) + string(le8(uint64(i)))
		if a(k) != b(k) || a(k) != a(k) {
			t.Fatalf("key %q hashes differently between calls", k)
		}
	}
}

type point struct{ X, Y int }

func TestKeyHasherCustomCodec(t *testing.T) {
	if h := KeyHasher[point](nil); h != nil {
		t.Error("KeyHasher[point](nil) is not nil, want nil: point has no built-in codec")
	}
	type userID string
	if h := KeyHasher[userID](nil); h != nil {
		t.Error("KeyHasher[userID](nil) is not nil, want nil: a named string has no built-in codec")
	}
	h := KeyHasher(stream.JSON[point]())
	if h == nil {
		t.Fatal("KeyHasher(stream.JSON[point]()) is nil")
	}
	if got, want := h(point{1, 2}), xxhash.Sum64String(`{"X":1,"Y":2}`); got != want {
		t.Errorf("point hash %#x, want xxhash of its JSON %#x", got, want)
	}
}

func TestKeyGroupInRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 128, 1000} {
		hashes := []uint64{0, 1, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64, math.MaxUint64 - 1}
		for range 100_000 {
			hashes = append(hashes, rng.Uint64())
		}
		for _, h := range hashes {
			if g := KeyGroup(h, n); g < 0 || g >= n {
				t.Fatalf("KeyGroup(%#x, %d) = %d, out of [0,%d)", h, n, g, n)
			}
		}
	}
}

func TestKeyGroupBalance(t *testing.T) {
	const keys, groups = 100_000, 128
	hash := KeyHasher[int](nil)
	var counts [groups]int
	for k := range keys {
		counts[KeyGroup(hash(k), groups)]++
	}
	mean := float64(keys) / groups
	for g, c := range counts {
		if dev := (float64(c) - mean) / mean; math.Abs(dev) > 0.25 {
			t.Errorf("key group %d has %d keys, %+.0f%% off the mean %.0f", g, c, 100*dev, mean)
		}
	}
}
