package kafka

import (
	"maps"
	"strings"
	"testing"
)

func TestOffsetRoundTrip(t *testing.T) {
	for _, o := range []splitOffsets{
		{splits: 1, index: 0, next: map[topicPartition]int64{}},
		{splits: 4, index: 3, next: map[topicPartition]int64{{"clicks", 0}: 0, {"clicks", 7}: 1 << 40, {"views", 2}: 12}},
		{splits: 1 << 20, index: 5, next: map[topicPartition]int64{{strings.Repeat("t", maxTopicLen), 1<<31 - 1}: 1<<63 - 1}},
	} {
		got, err := decodeOffsets(encodeOffsets(o))
		if err != nil {
			t.Fatalf("decode(encode(%v)): %v", o, err)
		}
		if got.splits != o.splits || got.index != o.index || !maps.Equal(got.next, o.next) {
			t.Errorf("decode(encode(%v)) = %v", o, got)
		}
	}
}

func TestOffsetDecodeRejects(t *testing.T) {
	good := encodeOffsets(splitOffsets{splits: 2, index: 1, next: map[topicPartition]int64{{"a", 1}: 5}})
	for _, tt := range []struct {
		name string
		off  []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"version", append([]byte{2}, good[1:]...), "version 2"},
		{"kind", append([]byte{1, 'L'}, good[2:]...), "another kind"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"trailing", append(append([]byte{}, good...), 0), "after the last"},
		{"index beyond count", []byte{1, 'K', 2, 2, 0}, "split 2 of 2"},
		{"zero splits", []byte{1, 'K', 0, 0, 0}, "split 0 of 0"},
		{"empty topic", []byte{1, 'K', 1, 0, 1, 0, 0, 0}, "topic name of 0 bytes"},
		{"long topic", []byte{1, 'K', 1, 0, 1, 0xfa, 0x01}, "topic length 250 out of range"},
		{"overlong varint", []byte{1, 'K', 0x81, 0x00, 0, 0}, "overlong"},
		{"duplicate", []byte{1, 'K', 1, 0, 2, 1, 'a', 0, 3, 1, 'a', 0, 4}, "twice"},
		{"huge count", []byte{1, 'K', 1, 0, 0xff, 0xff, 0xff, 0x7f}, "out of range"},
		{"partition out of int32", []byte{1, 'K', 1, 0, 1, 1, 'a', 0x80, 0x80, 0x80, 0x80, 0x10, 0}, "partition"},
	} {
		if _, err := decodeOffsets(tt.off); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: decode(%x) error %v, want one with %q", tt.name, tt.off, err, tt.want)
		}
	}
}

// Seek refuses what does not fit the split before the split reads anything.
func TestSeekRefuses(t *testing.T) {
	s := Source(Config{Brokers: []string{"localhost:1"}}, []string{"a"}, func(m *Message) (string, error) { return string(m.Value), nil })
	splits, err := s.Splits(2)
	if err != nil {
		t.Fatal(err)
	}
	mine := topicPartition{"a", 0}
	if owner(mine, 2) != 0 {
		mine.partition = 1
	}
	other := topicPartition{"a", mine.partition + 1}
	sp := splits[0].(*split[string])
	for _, tt := range []struct {
		name string
		off  splitOffsets
		want string
	}{
		{"other parallelism", splitOffsets{splits: 3, index: 0, next: map[topicPartition]int64{}}, "another source parallelism"},
		{"other index", splitOffsets{splits: 2, index: 1, next: map[topicPartition]int64{}}, "split 1 of 2"},
		{"other topic", splitOffsets{splits: 2, index: 0, next: map[topicPartition]int64{{"b", 0}: 1}}, "does not read"},
		{"other split's partition", splitOffsets{splits: 2, index: 0, next: map[topicPartition]int64{other: 1}}, "belongs to split 1"},
	} {
		if err := sp.Seek(encodeOffsets(tt.off)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Seek error %v, want one with %q", tt.name, err, tt.want)
		}
	}
	if err := sp.Seek(encodeOffsets(splitOffsets{splits: 2, index: 0, next: map[topicPartition]int64{mine: 42}})); err != nil {
		t.Fatalf("Seek of its own partition: %v", err)
	}
	// Before it starts, the split's offset is the one it was given.
	off, err := sp.Offset()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeOffsets(off)
	if err != nil || got.next[mine] != 42 {
		t.Errorf("offset after Seek: %v, %v; want %s at 42", got, err, mine)
	}
}

func FuzzDecodeOffsets(f *testing.F) {
	f.Add(encodeOffsets(splitOffsets{splits: 4, index: 1, next: map[topicPartition]int64{{"clicks", 3}: 99}}))
	f.Add([]byte{1, 'K', 1, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodeOffsets(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes (one encoding per offset).
		if again := encodeOffsets(o); string(again) != string(b) {
			t.Errorf("decode(%x) = %v encodes as %x", b, o, again)
		}
	})
}
