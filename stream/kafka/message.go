package kafka

import (
	"fmt"
	"time"

	"github.com/eddyflow/eddy/stream"
)

// Message is a Kafka record as a source's Decoder sees it and a sink's Encoder fills it.
type Message struct {
	// Topic and Partition locate the record; a sink's Encoder may leave Topic empty (the
	// sink's default topic) and sets no partition (the sink partitions by key).
	Topic     string
	Partition int32
	// Offset is the record's offset in its partition (sources only).
	Offset int64
	// Key and Value are the record's bytes. A nil Key is a record without a key.
	Key, Value []byte
	// Headers are the record's headers, in order.
	Headers []Header
	// Timestamp is the record's timestamp. A sink sets it from the Eddy record's event time
	// when the Encoder leaves it zero.
	Timestamp time.Time
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Decoder turns a Kafka record into a value. An error sends the record to the dead-letter
// output (with its topic, partition and offset) and the source goes on.
type Decoder[T any] func(m *Message) (T, error)

// Encoder turns a value into a Kafka record by filling m (which is zero on entry). An error
// sends the record to the dead-letter output and writes nothing for it.
type Encoder[T any] func(v T, m *Message) error

// Values decodes each record's value with codec, ignoring key and headers.
func Values[T any](codec stream.Codec[T]) Decoder[T] {
	return func(m *Message) (T, error) {
		v, err := codec.Decode(m.Value)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("decode value: %w", err)
		}
		return v, nil
	}
}

// KeyedValues encodes v with codec as the record's value and key(v) as its key, so that
// records with one key go to one partition.
func KeyedValues[T any](codec stream.Codec[T], key func(T) string) Encoder[T] {
	return func(v T, m *Message) error {
		b, err := codec.Append(nil, v)
		if err != nil {
			return fmt.Errorf("encode value: %w", err)
		}
		m.Value = b
		if key != nil {
			m.Key = []byte(key(v))
		}
		return nil
	}
}
