package kafka

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// A split's offset (replayable) is, in version 1:
//
//	byte    version (1)
//	byte    kind ('K')
//	uvarint the number of splits of the source when it was taken
//	uvarint the index of the split
//	uvarint the number of partitions that follow, then for each, sorted by topic, partition:
//	  uvarint length of the topic name, then the name
//	  uvarint partition
//	  uvarint the offset of the next record to read
//
// The split count and index are there because partitions are spread over splits by count: a
// restore at another source parallelism would hand partitions to splits that never saw their
// offsets, so Seek refuses it instead.
const (
	offsetVersion = 1
	offsetKind    = 'K'
	// maxTopicLen is Kafka's limit on a topic name.
	maxTopicLen = 249
)

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

func compareTP(a, b topicPartition) int {
	return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
}

// splitOffsets is what a split's offset holds.
type splitOffsets struct {
	splits, index int
	next          map[topicPartition]int64
}

func encodeOffsets(o splitOffsets) []byte {
	tps := make([]topicPartition, 0, len(o.next))
	for tp := range o.next {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareTP)
	b := []byte{offsetVersion, offsetKind}
	b = binary.AppendUvarint(b, uint64(o.splits))
	b = binary.AppendUvarint(b, uint64(o.index))
	b = binary.AppendUvarint(b, uint64(len(tps)))
	for _, tp := range tps {
		b = binary.AppendUvarint(b, uint64(len(tp.topic)))
		b = append(b, tp.topic...)
		b = binary.AppendUvarint(b, uint64(tp.partition))
		b = binary.AppendUvarint(b, uint64(o.next[tp]))
	}
	return b
}

// decodeOffsets reads an offset back. Bad input (short, foreign, out of range, trailing
// bytes, a partition twice) is an error, never a panic.
func decodeOffsets(b []byte) (splitOffsets, error) {
	var o splitOffsets
	switch {
	case len(b) < 2:
		return o, fmt.Errorf("kafka offset of %d bytes: too short", len(b))
	case b[0] != offsetVersion:
		return o, fmt.Errorf("kafka offset version %d, want %d", b[0], offsetVersion)
	case b[1] != offsetKind:
		return o, fmt.Errorf("offset of kind %q, want %q (an offset of another kind of source)", b[1], offsetKind)
	}
	r := uvarintReader{b: b[2:]}
	splits := r.next("split count", math.MaxInt32)
	index := r.next("split index", math.MaxInt32)
	n := r.next("partition count", uint64(len(b))) // each takes at least 3 bytes
	if r.err != nil {
		return o, r.err
	}
	if splits == 0 || index >= splits {
		return o, fmt.Errorf("kafka offset: split %d of %d", index, splits)
	}
	o.splits, o.index = int(splits), int(index)
	o.next = make(map[topicPartition]int64, min(n, 1024))
	for i := uint64(0); i < n; i++ {
		l := r.next("topic length", maxTopicLen)
		if r.err != nil {
			return o, r.err
		}
		if l == 0 || uint64(len(r.b)) < l {
			return o, fmt.Errorf("kafka offset: partition %d: topic name of %d bytes (%d left)", i, l, len(r.b))
		}
		topic := string(r.b[:l])
		r.b = r.b[l:]
		p := r.next("partition", math.MaxInt32)
		next := r.next("offset", math.MaxInt64)
		if r.err != nil {
			return o, r.err
		}
		tp := topicPartition{topic, int32(p)}
		if _, dup := o.next[tp]; dup {
			return o, fmt.Errorf("kafka offset: partition %s twice", tp)
		}
		o.next[tp] = int64(next)
	}
	if len(r.b) > 0 {
		return o, fmt.Errorf("kafka offset: %d bytes after the last partition", len(r.b))
	}
	return o, nil
}

// uvarintReader reads uvarints and keeps the first error.
type uvarintReader struct {
	b   []byte
	err error
}

func (r *uvarintReader) next(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	// A zero last byte is a longer encoding than needed: one offset, one encoding.
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.err = errors.New("kafka offset: truncated or overlong " + what)
		return 0
	}
	if v > max {
		r.err = fmt.Errorf("kafka offset: %s %d out of range", what, v)
		return 0
	}
	r.b = r.b[n:]
	return v
}
