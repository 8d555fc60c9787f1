package operator

import (
	"math"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// DefaultMaxKeyGroups is the number of key groups of a job unless it sets another: like
// Flink's max parallelism, it is fixed for the life of a job's state.
const DefaultMaxKeyGroups = 128

// KeyHasher returns a stable hash of a key: xxhash64 of the key's bytes. Stable means the same
// on every node and in every release, because it decides where state lives. For the built-in
// key types the bytes are those of CodecFor (integers as 8 bytes little endian); for others
// they are what codec produces. It returns nil when K has no built-in codec and codec is nil.
func KeyHasher[K comparable](codec Codec[K]) func(K) uint64 {
	var zero K
	switch any(zero).(type) {
	case string:
		return func(k K) uint64 { return xxhash.Sum64String(any(k).(string)) }
	case int:
		return func(k K) uint64 { return hash8(uint64(any(k).(int))) }
	case int64:
		return func(k K) uint64 { return hash8(uint64(any(k).(int64))) }
	case int32:
		return func(k K) uint64 { return hash8(uint64(any(k).(int32))) }
	case uint64:
		return func(k K) uint64 { return hash8(any(k).(uint64)) }
	case uint32:
		return func(k K) uint64 { return hash8(uint64(any(k).(uint32))) }
	case float64:
		// -0 == 0 in Go, so both must land in one key group; NaN is never equal to
		// itself, so a NaN key cannot find its state whatever its hash.
		return func(k K) uint64 { return hash8(math.Float64bits(any(k).(float64) + 0)) }
	}
	if codec == nil {
		if c, ok := CodecFor[K](); ok {
			codec = c
		} else {
			return nil
		}
	}
	return func(k K) uint64 {
		b, err := codec.Append(nil, k)
		if err != nil {
			// A key that cannot be encoded still needs a home; the codec's error shows up
			// where the key is encoded for real (state, the wire).
			return 0
		}
		return xxhash.Sum64(b)
	}
}

// KeyGroup maps a key hash to one of maxKeyGroups key groups: the high bits of
// (low 32 bits of hash) × maxKeyGroups, a multiply instead of a division.
// maxKeyGroups must be positive.
func KeyGroup(hash uint64, maxKeyGroups int) int {
	return int((uint64(uint32(hash)) * uint64(maxKeyGroups)) >> 32)
}

// hash8 is xxhash64 (seed 0) of the 8 little-endian bytes of v: the same value as
// xxhash.Sum64 of CodecFor's bytes, computed without a byte slice because it runs once per
// record at every KeyBy.
func hash8(v uint64) uint64 {
	const (
		prime1 uint64 = 11400714785074694791
		prime2 uint64 = 14029467366897019727
		prime3 uint64 = 1609587929392839161
		prime4 uint64 = 9650029242287828579
		prime5 uint64 = 2870177450012600261
	)
	k1 := bits.RotateLeft64(v*prime2, 31) * prime1
	h := (prime5 + 8) ^ k1
	h = bits.RotateLeft64(h, 27)*prime1 + prime4
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}
