package stream

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
)

// EncodeState encodes a piece of state (an accumulator, a key's value) for a snapshot: with
// its MarshalBinary when it has one (sketches and other types with unexported fields, which
// encoding/json would silently write as {}), with the built-in codec for basic types, else
// as JSON. A nil pointer encodes as nil.
//
// The first byte says which: 'C' built-in codec, 'B' MarshalBinary, 'J' JSON.
func EncodeState[V any](v V) ([]byte, error) {
	if rv := reflect.ValueOf(&v).Elem(); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil, nil
	}
	if m, ok := any(v).(encoding.BinaryMarshaler); ok {
		b, err := m.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode state %T: %w", v, err)
		}
		return append([]byte{'B'}, b...), nil
	}
	if c, ok := CodecFor[V](); ok {
		b, err := c.Append([]byte{'C'}, v)
		if err != nil {
			return nil, fmt.Errorf("encode state %T: %w", v, err)
		}
		return b, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode state %T: %w", v, err)
	}
	return append([]byte{'J'}, b...), nil
}

// DecodeState decodes what EncodeState wrote.
func DecodeState[V any](b []byte) (V, error) {
	var v V
	if len(b) == 0 {
		return v, nil // a nil pointer, or the zero value
	}
	switch b[0] {
	case 'B':
		rt := reflect.TypeFor[V]()
		var target any
		if rt.Kind() == reflect.Pointer {
			pv := reflect.New(rt.Elem())
			v = pv.Interface().(V)
			target = v
		} else {
			target = &v
		}
		u, ok := target.(encoding.BinaryUnmarshaler)
		if !ok {
			return v, fmt.Errorf("decode state %s: binary state, but the type cannot unmarshal it", rt)
		}
		if err := u.UnmarshalBinary(b[1:]); err != nil {
			return v, fmt.Errorf("decode state %s: %w", rt, err)
		}
		return v, nil
	case 'C':
		c, ok := CodecFor[V]()
		if !ok {
			return v, fmt.Errorf("decode state %s: built-in codec state, but the type has none", reflect.TypeFor[V]())
		}
		v, err := c.Decode(b[1:])
		if err != nil {
			return v, fmt.Errorf("decode state %s: %w", reflect.TypeFor[V](), err)
		}
		return v, nil
	case 'J':
		if err := json.Unmarshal(b[1:], &v); err != nil {
			return v, fmt.Errorf("decode state %s: %w", reflect.TypeFor[V](), err)
		}
		return v, nil
	default:
		return v, fmt.Errorf("decode state %s: unknown encoding %q", reflect.TypeFor[V](), b[0])
	}
}
