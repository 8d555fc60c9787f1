package sketches

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The serialized form of every sketch is
//
//	version (1 byte) | kind (1 byte) | payload | CRC-32C of all that came before (4 bytes, LE)
//
// with integers little endian and floats as their IEEE-754 bits. UnmarshalBinary checks the
// length, the checksum, the version and the kind before it reads the payload, and checks
// every count in the payload against the bytes that are left before it allocates: a decoder
// never allocates more than a small multiple of its input.

// formatVersion is the version byte of the serialized form.
const formatVersion = 1

// kind says which sketch a serialized form holds.
type kind byte

const (
	kindCountMin kind = iota + 1
	kindHyperLogLog
	kindBloom
	kindRotatingBloom
	kindTopK
	kindQuantiles
)

func (k kind) String() string {
	switch k {
	case kindCountMin:
		return "count-min"
	case kindHyperLogLog:
		return "hyperloglog"
	case kindBloom:
		return "bloom"
	case kindRotatingBloom:
		return "rotating bloom"
	case kindTopK:
		return "top-k"
	case kindQuantiles:
		return "quantiles"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// ErrIncompatible is wrapped by Merge when the two sketches were built with different
// parameters.
var ErrIncompatible = errors.New("sketches built with different parameters")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header starts a serialized form of kind k, with room for about size more bytes.
func header(k kind, size int) []byte {
	b := make([]byte, 0, 2+size+4)
	return append(b, formatVersion, byte(k))
}

// seal appends the checksum.
func seal(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// open checks the envelope of data and returns a decoder over its payload.
func open(data []byte, k kind) (*decoder, error) {
	if len(data) < 6 {
		return nil, fmt.Errorf("unmarshal %s: %d bytes, shorter than the 6-byte envelope", k, len(data))
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("unmarshal %s: checksum %08x, want %08x (corrupt data)", k, got, sum)
	}
	if body[0] != formatVersion {
		return nil, fmt.Errorf("unmarshal %s: format version %d, want %d", k, body[0], formatVersion)
	}
	if kind(body[1]) != k {
		return nil, fmt.Errorf("unmarshal %s: the data holds a %s", k, kind(body[1]))
	}
	return &decoder{k: k, b: body[2:]}, nil
}

// decoder reads a payload; the first short read sets err and every later read returns 0.
type decoder struct {
	k   kind
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("unmarshal %s: %s", d.k, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("truncated: want %d more bytes, have %d", n, len(d.b))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) f64() float64 { return math.Float64frombits(d.u64()) }

// count reads a u32 count of items of at least size bytes each, and checks that the
// bytes left can hold them, so that the caller can allocate for them.
func (d *decoder) count(what string, size int) int {
	n := d.u32()
	if d.err == nil && uint64(n)*uint64(size) > uint64(len(d.b)) {
		d.fail("%d %s of %d bytes each do not fit in the %d bytes left", n, what, size, len(d.b))
		return 0
	}
	return int(n)
}

// words reads n little-endian uint64s; the caller has checked that n fits.
func (d *decoder) words(n int) []uint64 {
	p := d.take(n * 8)
	if p == nil {
		return nil
	}
	w := make([]uint64, n)
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
	return w
}

// end reports an error when bytes are left over.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes left over after the sketch", len(d.b))
	}
	return d.err
}

func appendU32(b []byte, v uint32) []byte  { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte  { return binary.LittleEndian.AppendUint64(b, v) }
func appendF64(b []byte, v float64) []byte { return appendU64(b, math.Float64bits(v)) }

// mix64 is splitmix64's finaliser: it turns a hash into a second, independent-looking one.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
