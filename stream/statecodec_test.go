package stream

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// binState has only unexported fields: JSON would lose them, MarshalBinary keeps them.
type binState struct{ n uint64 }

func (b *binState) MarshalBinary() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, b.n), nil
}

func (b *binState) UnmarshalBinary(p []byte) error {
	if len(p) != 8 {
		return errors.New("want 8 bytes")
	}
	b.n = binary.LittleEndian.Uint64(p)
	return nil
}

func TestStateCodecRoundTrip(t *testing.T) {
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", name, got, want)
		}
	}
	roundTrip := func(name string, v any) any {
		t.Helper()
		switch x := v.(type) {
		case int64:
			b, err := EncodeState(x)
			if err != nil {
				t.Fatal(err)
			}
			out, err := DecodeState[int64](b)
			if err != nil {
				t.Fatal(err)
			}
			return out
		case KV[string, []int]:
			b, _ := EncodeState(x)
			out, err := DecodeState[KV[string, []int]](b)
			if err != nil {
				t.Fatal(err)
			}
			return out
		case *binState:
			b, _ := EncodeState(x)
			out, err := DecodeState[*binState](b)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		t.Fatalf("%s: no case", name)
		return nil
	}
	check("int64", roundTrip("int64", int64(-42)), int64(-42))
	check("struct", roundTrip("struct", KV[string, []int]{"a", []int{1, 2}}), KV[string, []int]{"a", []int{1, 2}})
	check("binary", roundTrip("binary", &binState{n: 7}), &binState{n: 7})
	check("nil pointer", roundTrip("nil", (*binState)(nil)), (*binState)(nil))

	if _, err := DecodeState[int64]([]byte("Xjunk")); err == nil {
		t.Error("an unknown encoding decoded")
	}
	if _, err := DecodeState[*binState]([]byte("Bshort")); err == nil {
		t.Error("a bad binary state decoded")
	}
}
