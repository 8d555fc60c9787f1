package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// replayable is what the runtime asks of a split that takes part in checkpoints (see Split).
type replayable interface {
	Offset() ([]byte, error)
	Seek(offset []byte) error
}

const (
	// offsetVersion is the leading byte of every offset this package makes.
	offsetVersion = 1
	// offsetLen is the length of those offsets: version, kind, two int64.
	offsetLen = 2 + 8 + 8

	offsetKindLine  = 'L'
	offsetKindRange = 'R'
)

// Compile-time checks: these splits rewind, and the channel split does not.
var (
	_ replayable = (*fileLineSplit)(nil)
	_ replayable = (*jsonlSplit[int])(nil)
	_ replayable = (*rangeSplit[int])(nil)
)

// encodeOffset makes an offset of the given kind from two int64.
func encodeOffset(kind byte, a, b int64) []byte {
	off := make([]byte, 2, offsetLen)
	off[0], off[1] = offsetVersion, kind
	off = binary.BigEndian.AppendUint64(off, uint64(a))
	return binary.BigEndian.AppendUint64(off, uint64(b))
}

// decodeOffset reads an offset of the given kind back into its two int64. It checks the
// length, version and kind only; what the numbers mean is the split's to check.
func decodeOffset(off []byte, kind byte) (a, b int64, err error) {
	switch {
	case len(off) == 0:
		return 0, 0, errors.New("empty offset")
	case off[0] != offsetVersion:
		return 0, 0, fmt.Errorf("offset version %d, want %d", off[0], offsetVersion)
	case len(off) != offsetLen:
		return 0, 0, fmt.Errorf("offset of %d bytes, want %d", len(off), offsetLen)
	case off[1] != kind:
		return 0, 0, fmt.Errorf("offset of kind %q, want %q (an offset of another kind of source)", off[1], kind)
	}
	return int64(binary.BigEndian.Uint64(off[2:10])), int64(binary.BigEndian.Uint64(off[10:18])), nil
}

// fileLineSplit is the split of Lines: a lineSplit over a file it owns, which can rewind.
type fileLineSplit struct{ *lineSplit }

// Offset returns the byte offset and number of the next line.
func (s *fileLineSplit) Offset() ([]byte, error) { return s.offset() }

// Seek positions the file at the line the offset names; the next Read reads from there.
func (s *fileLineSplit) Seek(off []byte) error { return s.seek(off) }

// Offset returns the byte offset and number of the next line: blank lines and dead letters
// before it are behind the offset, so after a Seek they are neither read nor reported again.
func (s *jsonlSplit[T]) Offset() ([]byte, error) { return s.lines.offset() }

// Seek positions the file at the line the offset names; the next Read reads from there.
func (s *jsonlSplit[T]) Seek(off []byte) error { return s.lines.seek(off) }

func (s *lineSplit) offset() ([]byte, error) {
	if s.file == nil {
		return nil, fmt.Errorf("offset of %s: the split does not own a file it can rewind", s.name)
	}
	return encodeOffset(offsetKindLine, s.pos, s.line+1), nil
}

// seek checks the offset against the file (in range, on a line boundary, a line number that
// fits) before moving anything: a failed seek leaves the split where it was.
func (s *lineSplit) seek(off []byte) error {
	if s.file == nil || s.c == nil {
		return fmt.Errorf("seek %s: the split is closed or does not own a file it can rewind", s.name)
	}
	pos, next, err := decodeOffset(off, offsetKindLine)
	if err != nil {
		return fmt.Errorf("seek %s: %w", s.name, err)
	}
	if pos < 0 {
		return fmt.Errorf("seek %s: negative byte offset %d", s.name, pos)
	}
	// Every line before the next takes at least its newline byte.
	if next < 1 || next-1 > pos {
		return fmt.Errorf("seek %s: line number %d does not fit byte offset %d", s.name, next, pos)
	}
	info, err := s.file.Stat()
	if err != nil {
		return fmt.Errorf("seek %s: %w", s.name, err)
	}
	if size := info.Size(); pos > size {
		return fmt.Errorf("seek %s: byte offset %d beyond the end of the file (%d bytes)", s.name, pos, size)
	} else if pos > 0 && pos < size {
		// Inside the file, a line starts after a newline.
		var b [1]byte
		if _, err := s.file.ReadAt(b[:], pos-1); err != nil {
			return fmt.Errorf("seek %s: read byte %d: %w", s.name, pos-1, err)
		}
		if b[0] != '\n' {
			return fmt.Errorf("seek %s: byte offset %d is not the start of a line", s.name, pos)
		}
	}
	if _, err := s.file.Seek(pos, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s to byte %d: %w", s.name, pos, err)
	}
	s.r.Reset(s.file)
	s.pos, s.line, s.eof = pos, next-1, false
	return nil
}

// Offset returns the next index of the range and its end.
func (s *rangeSplit[T]) Offset() ([]byte, error) {
	return encodeOffset(offsetKindRange, s.next, s.end), nil
}

// Seek moves to the index the offset names. The offset must come from a split with the same
// range end (the same split of an equal source); the split does not keep where its range
// starts, so an index before the start is not detected.
func (s *rangeSplit[T]) Seek(off []byte) error {
	next, end, err := decodeOffset(off, offsetKindRange)
	if err != nil {
		return fmt.Errorf("seek range split: %w", err)
	}
	if end != s.end {
		return fmt.Errorf("seek range split: offset of a range ending at %d, this one ends at %d", end, s.end)
	}
	if next < 0 || next > end {
		return fmt.Errorf("seek range split: index %d outside [0, %d]", next, end)
	}
	s.next = next
	return nil
}
