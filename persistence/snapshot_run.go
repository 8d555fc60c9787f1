package persistence

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A sorted run is how a key group's snapshot is written to a checkpoint store as a stream:
// key and value pairs in strictly ascending key order, in blocks, so that neither the
// writer nor the reader ever holds more than one block, and so that the runs of an
// incremental chain (a full snapshot, then the changes of each checkpoint after it) merge
// into the state they add up to in one pass (MergeRuns), as an LSM tree merges its levels.
//
// An object holding a run is a sequence of frames (the format of frame.go: version, length,
// CRC-32C, payload):
//
//	header  "EDDYRUN" 1                     the format and its version
//	block   'B' (uvarint len, key, uvarint len, value)...   about runBlockSize bytes of pairs
//	...
//	end     'E' uvarint count               the number of pairs: a run without it is truncated
//
// Each frame's checksum catches damage before its pairs are used; the end frame catches
// truncation at a frame boundary; the RunHandle's size and CRC-32C of the whole object
// catch an object that was swapped or cut after its end frame.
const (
	runMagic = "EDDYRUN\x01"
	// runBlockSize is about how many bytes of pairs go into one block (one frame).
	runBlockSize = 64 << 10
	// maxRunFrame bounds one frame of a run, so that a damaged length cannot make a reader
	// allocate without bound: a pair larger than this cannot be written.
	maxRunFrame = 64 << 20
)

// RunHandle says where a run was written and how to check it: what a checkpoint's manifest
// keeps of a key group's snapshot instead of its bytes.
type RunHandle struct {
	// Key is the object's key in the store's snapshot objects (SnapshotObjects).
	Key string
	// Size is the object's length in bytes, CRC its CRC-32C (Castagnoli).
	Size int64
	CRC  uint32
	// Pairs is how many pairs the run holds.
	Pairs uint64
}

// RunWriter writes a sorted run to w, block by block.
type RunWriter struct {
	w     io.Writer
	block []byte
	frame []byte
	last  []byte
	begun bool
	pairs uint64
	size  int64
	crc   uint32
	err   error
}

// NewRunWriter returns a writer of one sorted run into w.
func NewRunWriter(w io.Writer) *RunWriter {
	return &RunWriter{w: w, block: make([]byte, 0, runBlockSize+1024)}
}

// Add appends a pair; keys must come in strictly ascending order (bytes.Compare).
func (rw *RunWriter) Add(key, value []byte) error {
	if rw.err != nil {
		return rw.err
	}
	if rw.begun && bytes.Compare(key, rw.last) <= 0 {
		rw.err = fmt.Errorf("write sorted run: key %x after %x: keys must ascend", key, rw.last)
		return rw.err
	}
	if n := len(key) + len(value) + 2*binary.MaxVarintLen64 + 1; n > maxRunFrame-frameHeaderSize {
		rw.err = fmt.Errorf("write sorted run: a pair of %d bytes is larger than a run's frame (%d)", n, maxRunFrame)
		return rw.err
	}
	if !rw.begun {
		rw.begun = true
		if err := rw.writeFrame([]byte(runMagic)); err != nil {
			return err
		}
	}
	rw.last = append(rw.last[:0], key...)
	if len(rw.block) == 0 {
		rw.block = append(rw.block, 'B')
	}
	rw.block = appendUvarintBytes(appendUvarintBytes(rw.block, key), value)
	rw.pairs++
	if len(rw.block) >= runBlockSize {
		return rw.flushBlock()
	}
	return nil
}

func (rw *RunWriter) flushBlock() error {
	if len(rw.block) == 0 {
		return nil
	}
	err := rw.writeFrame(rw.block)
	rw.block = rw.block[:0]
	return err
}

func (rw *RunWriter) writeFrame(payload []byte) error {
	rw.frame = appendFrame(rw.frame[:0], payload)
	rw.crc = crc32.Update(rw.crc, castagnoli, rw.frame)
	rw.size += int64(len(rw.frame))
	if _, err := rw.w.Write(rw.frame); err != nil {
		rw.err = fmt.Errorf("write sorted run: %w", err)
		return rw.err
	}
	if cap(rw.frame) > 2*runBlockSize {
		rw.frame = nil // one large pair: do not keep its buffer
	}
	return nil
}

// Finish writes the end of the run and returns its handle (without Key, which the caller
// knows). The writer is not usable after.
func (rw *RunWriter) Finish() (RunHandle, error) {
	if rw.err != nil {
		return RunHandle{}, rw.err
	}
	if !rw.begun {
		rw.begun = true
		if err := rw.writeFrame([]byte(runMagic)); err != nil {
			return RunHandle{}, err
		}
	}
	if err := rw.flushBlock(); err != nil {
		return RunHandle{}, err
	}
	if err := rw.writeFrame(binary.AppendUvarint([]byte{'E'}, rw.pairs)); err != nil {
		return RunHandle{}, err
	}
	rw.err = errors.New("write sorted run: finished")
	return RunHandle{Size: rw.size, CRC: rw.crc, Pairs: rw.pairs}, nil
}

// RunReader reads a sorted run back, block by block, checking each frame, the order of the
// keys, the end, and (when it has a handle) the object's size and CRC-32C.
type RunReader struct {
	r      *bufio.Reader
	where  string
	want   *RunHandle
	block  []byte
	rest   []byte
	last   []byte
	begun  bool
	done   bool
	pairs  uint64
	size   int64
	crc    uint32
	header [frameHeaderSize]byte
	err    error
}

// NewRunReader reads the run in r; where names it in errors. With a handle, the object
// must also have the handle's size, CRC-32C and number of pairs.
func NewRunReader(r io.Reader, where string, want *RunHandle) *RunReader {
	return &RunReader{r: bufio.NewReaderSize(r, 64<<10), where: where, want: want}
}

func (rr *RunReader) corrupt(format string, args ...any) error {
	rr.err = &CorruptError{Where: rr.where, Reason: fmt.Sprintf(format, args...)}
	return rr.err
}

// frame reads the next frame's payload into rr.block.
func (rr *RunReader) frame() ([]byte, error) {
	if _, err := io.ReadFull(rr.r, rr.header[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, rr.corrupt("truncated after %d bytes: the run has no end", rr.size)
		}
		rr.err = fmt.Errorf("read %s: %w", rr.where, err)
		return nil, rr.err
	}
	n := binary.BigEndian.Uint32(rr.header[1:5])
	if rr.header[0] != frameVersion {
		return nil, rr.corrupt("frame at byte %d: unknown format version %d, want %d", rr.size, rr.header[0], frameVersion)
	}
	if n > maxRunFrame {
		return nil, rr.corrupt("frame at byte %d: %d bytes, more than a run's frame holds (%d)", rr.size, n, maxRunFrame)
	}
	var buf []byte
	if n <= 2*runBlockSize {
		if cap(rr.block) < frameHeaderSize+int(n) {
			rr.block = make([]byte, 0, 2*runBlockSize+frameHeaderSize)
		}
		buf = rr.block[:frameHeaderSize+int(n)]
		copy(buf, rr.header[:])
		if _, err := io.ReadFull(rr.r, buf[frameHeaderSize:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, rr.corrupt("truncated in the frame at byte %d (of %d bytes)", rr.size, n)
			}
			rr.err = fmt.Errorf("read %s: %w", rr.where, err)
			return nil, rr.err
		}
	} else {
		// A large pair: the buffer grows with what arrives, so a damaged length costs no
		// more than the bytes that are there.
		big := bytes.NewBuffer(append(make([]byte, 0, 2*runBlockSize), rr.header[:]...))
		if got, err := io.CopyN(big, rr.r, int64(n)); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, rr.corrupt("truncated in the frame at byte %d (%d of %d bytes)", rr.size, got, n)
			}
			rr.err = fmt.Errorf("read %s: %w", rr.where, err)
			return nil, rr.err
		}
		buf = big.Bytes()
	}
	payload, err := decodeFrame(buf)
	if err != nil {
		return nil, rr.corrupt("frame at byte %d: %v", rr.size, err)
	}
	rr.crc = crc32.Update(rr.crc, castagnoli, buf)
	rr.size += int64(len(buf))
	return payload, nil
}

// Next returns the next pair, io.EOF after the last one (once the end and the handle are
// checked), or a *CorruptError. The slices are valid until the next call.
func (rr *RunReader) Next() (key, value []byte, err error) {
	if rr.err != nil {
		return nil, nil, rr.err
	}
	if !rr.begun {
		p, err := rr.frame()
		if err != nil {
			return nil, nil, err
		}
		if string(p) != runMagic {
			return nil, nil, rr.corrupt("not an Eddy sorted run of version 1 (header %q)", p)
		}
		rr.begun = true
	}
	for len(rr.rest) == 0 {
		p, err := rr.frame()
		if err != nil {
			return nil, nil, err
		}
		switch {
		case len(p) > 1 && p[0] == 'B':
			rr.rest = p[1:]
		case len(p) > 0 && p[0] == 'E':
			return nil, nil, rr.end(p[1:])
		default:
			return nil, nil, rr.corrupt("frame at byte %d: neither a block nor the end", rr.size)
		}
	}
	k, rest, err := cutUvarintBytes(rr.rest)
	if err == nil {
		value, rest, err = cutUvarintBytes(rest)
	}
	if err != nil {
		return nil, nil, rr.corrupt("pair %d: %v", rr.pairs, err)
	}
	if rr.pairs > 0 && bytes.Compare(k, rr.last) <= 0 {
		return nil, nil, rr.corrupt("pair %d: key %x after %x: keys do not ascend", rr.pairs, k, rr.last)
	}
	rr.rest = rest
	rr.last = append(rr.last[:0], k...)
	rr.pairs++
	return k, value, nil
}

func (rr *RunReader) end(p []byte) error {
	count, n := binary.Uvarint(p)
	if n <= 0 || n != len(p) {
		return rr.corrupt("a damaged end")
	}
	if count != rr.pairs {
		return rr.corrupt("the end says %d pairs, the run held %d", count, rr.pairs)
	}
	if _, err := rr.r.ReadByte(); err == nil {
		return rr.corrupt("bytes after the end, at byte %d", rr.size)
	} else if !errors.Is(err, io.EOF) {
		rr.err = fmt.Errorf("read %s: %w", rr.where, err)
		return rr.err
	}
	if w := rr.want; w != nil && (w.Size != rr.size || w.CRC != rr.crc || w.Pairs != rr.pairs) {
		return rr.corrupt("%d bytes, CRC-32C %#08x, %d pairs; the checkpoint recorded %d bytes, %#08x, %d pairs",
			rr.size, rr.crc, rr.pairs, w.Size, w.CRC, w.Pairs)
	}
	rr.done = true
	rr.err = io.EOF
	return io.EOF
}

// MergeRuns calls f with every key of runs, oldest run first, in ascending key order, with
// the value of the newest run that holds it: the state an incremental chain adds up to.
// It stops at the first error, of a run or of f. The slices are valid only during the call.
func MergeRuns(runs []*RunReader, f func(key, value []byte) error) error {
	type head struct {
		k, v []byte
		ok   bool
	}
	heads := make([]head, len(runs))
	advance := func(i int) error {
		k, v, err := runs[i].Next()
		if errors.Is(err, io.EOF) {
			heads[i] = head{}
			return nil
		}
		if err != nil {
			return err
		}
		heads[i] = head{k, v, true}
		return nil
	}
	for i := range runs {
		if err := advance(i); err != nil {
			return err
		}
	}
	for {
		// Chains are short (graph's maxDeltaChain + 1 runs): a linear scan beats a heap.
		min := -1
		for i := range heads {
			if heads[i].ok && (min < 0 || bytes.Compare(heads[i].k, heads[min].k) <= 0) {
				min = i // <=: of equal keys the newest (highest index) wins
			}
		}
		if min < 0 {
			return nil
		}
		if err := f(heads[min].k, heads[min].v); err != nil {
			return err
		}
		key := heads[min].k
		for i := range heads {
			if i != min && heads[i].ok && bytes.Equal(heads[i].k, key) {
				if err := advance(i); err != nil {
					return err
				}
			}
		}
		if err := advance(min); err != nil {
			return err
		}
	}
}

// AppendRunHandle appends h in a binary form (for a checkpoint's manifest).
func AppendRunHandle(dst []byte, h RunHandle) []byte {
	dst = appendUvarintBytes(dst, []byte(h.Key))
	dst = binary.AppendUvarint(dst, uint64(h.Size))
	dst = binary.BigEndian.AppendUint32(dst, h.CRC)
	return binary.AppendUvarint(dst, h.Pairs)
}

// CutRunHandle decodes a handle that AppendRunHandle wrote at the start of b, and returns
// the rest.
func CutRunHandle(b []byte) (RunHandle, []byte, error) {
	key, b, err := cutUvarintBytes(b)
	if err != nil {
		return RunHandle{}, nil, fmt.Errorf("run handle: key: %w", err)
	}
	if err := checkObjectKey(string(key)); err != nil {
		return RunHandle{}, nil, fmt.Errorf("run handle: %w", err)
	}
	size, n := binary.Uvarint(b)
	if n <= 0 || size > 1<<62 {
		return RunHandle{}, nil, errors.New("run handle: bad size")
	}
	b = b[n:]
	if len(b) < 4 {
		return RunHandle{}, nil, errors.New("run handle: no checksum")
	}
	crc := binary.BigEndian.Uint32(b)
	b = b[4:]
	pairs, n := binary.Uvarint(b)
	if n <= 0 {
		return RunHandle{}, nil, errors.New("run handle: bad count")
	}
	return RunHandle{Key: string(key), Size: int64(size), CRC: crc, Pairs: pairs}, b[n:], nil
}

func appendUvarintBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

func cutUvarintBytes(b []byte) (field, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, errors.New("bad length")
	}
	if n > uint64(len(b)-w) {
		return nil, nil, fmt.Errorf("length %d, only %d bytes left", n, len(b)-w)
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}
