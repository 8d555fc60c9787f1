package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Every journal entry, snapshot and checkpoint file is stored as one frame:
//
//	offset 0  1 byte   format version (frameVersion)
//	offset 1  4 bytes  payload length, big-endian
//	offset 5  4 bytes  CRC-32C (Castagnoli) of bytes 0..4 and the payload, big-endian
//	offset 9  ...      payload
//
// The length makes truncation (or trailing garbage) visible as such rather than as a bare
// checksum mismatch; the checksum catches flipped bits anywhere in the frame.
const (
	frameVersion    = 1
	frameHeaderSize = 9
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrNotFound is returned (wrapped) when an identity, snapshot, checkpoint or savepoint does
// not exist, and by LoadLatestValid when no candidate is valid.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by operations on a closed store.
var ErrClosed = errors.New("store closed")

// CorruptError reports a stored journal entry, snapshot or checkpoint file that failed its
// version, length or checksum check. Recovery treats it as "this one is lost": it falls back
// to the previous snapshot or checkpoint (see LoadLatestValid).
type CorruptError struct {
	// Where names what was read: a file path, or a Badger key described as
	// `journal entry "job/stage/17" seq 42 in badger /data/state`.
	Where string
	// Reason says what was expected and what was found.
	Reason string
}

func (e *CorruptError) Error() string {
	return "corrupt " + e.Where + ": " + e.Reason
}

// appendFrame appends payload, framed, to dst.
func appendFrame(dst, payload []byte) []byte {
	if len(payload) > math.MaxUint32 {
		// Badger refuses values this large long before; files of 4 GiB of metadata are a bug.
		panic(fmt.Sprintf("persistence: payload of %d bytes does not fit a frame", len(payload)))
	}
	start := len(dst)
	dst = append(dst, frameVersion, 0, 0, 0, 0, 0, 0, 0, 0)
	h := dst[start : start+frameHeaderSize]
	binary.BigEndian.PutUint32(h[1:5], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, h[:5])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.BigEndian.PutUint32(h[5:9], crc)
	return append(dst, payload...)
}

// decodeFrame checks a frame and returns its payload, which aliases b. The error's text is
// the reason for a CorruptError: the caller knows where b came from.
func decodeFrame(b []byte) ([]byte, error) {
	if len(b) < frameHeaderSize {
		return nil, fmt.Errorf("truncated: %d bytes, want at least the %d-byte header", len(b), frameHeaderSize)
	}
	if b[0] != frameVersion {
		return nil, fmt.Errorf("unknown format version %d, want %d", b[0], frameVersion)
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if have := uint64(len(b) - frameHeaderSize); have != uint64(n) {
		if have < uint64(n) {
			return nil, fmt.Errorf("truncated: payload is %d bytes, header says %d", have, n)
		}
		return nil, fmt.Errorf("%d trailing bytes after the %d-byte payload", have-uint64(n), n)
	}
	payload := b[frameHeaderSize:]
	crc := crc32.Update(0, castagnoli, b[:5])
	crc = crc32.Update(crc, castagnoli, payload)
	if stored := binary.BigEndian.Uint32(b[5:9]); stored != crc {
		return nil, fmt.Errorf("CRC-32C mismatch: stored %#08x, computed %#08x over %d bytes", stored, crc, len(payload))
	}
	return payload, nil
}
