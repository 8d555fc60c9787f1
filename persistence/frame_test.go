package persistence

import (
	"bytes"
	"strings"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	good := appendFrame(nil, []byte("payload"))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		return b
	}
	for _, tc := range []struct {
		name, want string // want: "" for success, else a substring of the reason
		in         []byte
	}{
		{"good", "", good},
		{"empty payload", "", appendFrame(nil, nil)},
		{"empty", "truncated: 0 bytes, want at least the 9-byte header", nil},
		{"short header", "truncated: 4 bytes", good[:4]},
		{"truncated payload", "truncated: payload is 3 bytes, header says 7", good[:12]},
		{"trailing bytes", "2 trailing bytes after the 7-byte payload", append(bytes.Clone(good), 0, 0)},
		{"version", "unknown format version 17, want 1", flip(0)},
		{"length", "header says", flip(4)},
		{"checksum field", "CRC-32C mismatch", flip(6)},
		{"payload bit", "CRC-32C mismatch", flip(10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeFrame(tc.in)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzDecode checks that the frame decoder (used for every journal entry, snapshot and
// checkpoint file) never panics, and that what it accepts re-encodes to the same bytes.
//
//	go test ./persistence -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	f.Add(appendFrame(nil, nil))
	f.Add(appendFrame(nil, []byte("event")))
	f.Add(appendFrame(nil, bytes.Repeat([]byte{0xff}, 300)))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, err := decodeFrame(b)
		if err != nil {
			if payload != nil {
				t.Fatal("payload with an error")
			}
			return
		}
		if again := appendFrame(nil, payload); !bytes.Equal(again, b) {
			t.Fatalf("decode(%x) = %x, which encodes to %x", b, payload, again)
		}
	})
}
