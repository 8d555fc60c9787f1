package stream

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
)

// Codec encodes values of T to bytes and back. Every stream whose records cross a
// re-partitioning boundary (KeyBy) needs one: locally a batch is passed by pointer, but across
// nodes and into state it is bytes.
type Codec[T any] interface {
	// Append appends the encoding of v to dst and returns the extended slice.
	Append(dst []byte, v T) ([]byte, error)
	// Decode decodes a value from the whole of src. Bad input is an error, never a panic.
	Decode(src []byte) (T, error)
}

// ErrShortInput is returned when an encoding ends before its value does.
var ErrShortInput = errors.New("codec: input too short")

// CodecFor returns the built-in binary codec for T when T is one of string, []byte, bool,
// int, int8..int64, uint, uint8..uint64, float32 or float64; ok is false otherwise.
// Integers are fixed-width little endian, floats their IEEE-754 bits, strings and byte slices
// their raw bytes.
func CodecFor[T any]() (c Codec[T], ok bool) {
	var zero T
	var v any
	switch any(zero).(type) {
	case string:
		v = stringCodec{}
	case []byte:
		v = bytesCodec{}
	case bool:
		v = boolCodec{}
	case int:
		v = intCodec[int]{}
	case int8:
		v = intCodec[int8]{}
	case int16:
		v = intCodec[int16]{}
	case int32:
		v = intCodec[int32]{}
	case int64:
		v = intCodec[int64]{}
	case uint:
		v = intCodec[uint]{}
	case uint8:
		v = intCodec[uint8]{}
	case uint16:
		v = intCodec[uint16]{}
	case uint32:
		v = intCodec[uint32]{}
	case uint64:
		v = intCodec[uint64]{}
	case float32:
		v = float32Codec{}
	case float64:
		v = float64Codec{}
	default:
		return nil, false
	}
	return v.(Codec[T]), true
}

// JSON returns a codec that encodes T with encoding/json. It works for any type that
// encoding/json can round-trip; it is the easy choice for structs, not the fast one.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("json encode %T: %w", v, err)
	}
	return append(dst, b...), nil
}

func (jsonCodec[T]) Decode(src []byte) (T, error) {
	var v T
	if err := json.Unmarshal(src, &v); err != nil {
		return v, fmt.Errorf("json decode %s: %w", reflect.TypeFor[T](), err)
	}
	return v, nil
}

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }
func (stringCodec) Decode(src []byte) (string, error)           { return string(src), nil }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) ([]byte, error) { return append(dst, v...), nil }
func (bytesCodec) Decode(src []byte) ([]byte, error)           { return append([]byte(nil), src...), nil }

type boolCodec struct{}

func (boolCodec) Append(dst []byte, v bool) ([]byte, error) {
	if v {
		return append(dst, 1), nil
	}
	return append(dst, 0), nil
}

func (boolCodec) Decode(src []byte) (bool, error) {
	if len(src) != 1 || src[0] > 1 {
		return false, fmt.Errorf("decode bool: want one byte, 0 or 1, got % x", src)
	}
	return src[0] == 1, nil
}

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// intCodec writes every integer as 8 bytes little endian, so a key hashes the same whatever
// width of integer the user chose for it.
type intCodec[T integer] struct{}

func (intCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	return binary.LittleEndian.AppendUint64(dst, uint64(v)), nil
}

func (intCodec[T]) Decode(src []byte) (T, error) {
	if len(src) != 8 {
		return 0, fmt.Errorf("decode integer: want 8 bytes, got %d: %w", len(src), ErrShortInput)
	}
	u := binary.LittleEndian.Uint64(src)
	v := T(u)
	if uint64(v) != u {
		return 0, fmt.Errorf("decode integer: %d overflows %s", u, reflect.TypeFor[T]())
	}
	return v, nil
}

type float64Codec struct{}

func (float64Codec) Append(dst []byte, v float64) ([]byte, error) {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v)), nil
}

func (float64Codec) Decode(src []byte) (float64, error) {
	if len(src) != 8 {
		return 0, fmt.Errorf("decode float64: want 8 bytes, got %d: %w", len(src), ErrShortInput)
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(src)), nil
}

type float32Codec struct{}

func (float32Codec) Append(dst []byte, v float32) ([]byte, error) {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(v)), nil
}

func (float32Codec) Decode(src []byte) (float32, error) {
	if len(src) != 4 {
		return 0, fmt.Errorf("decode float32: want 4 bytes, got %d: %w", len(src), ErrShortInput)
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(src)), nil
}
