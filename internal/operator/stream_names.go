package operator

import "github.com/eddyflow/eddy/stream"

// The operators were written inside package stream and moved here, out of the public API;
// these names let their code keep reading as it did. They are the same types, not copies.
type (
	Record[T any]                        = stream.Record[T]
	KV[K comparable, V any]              = stream.KV[K, V]
	Kind                                 = stream.Kind
	Aggregator[T, A, R any]              = stream.Aggregator[T, A, R]
	Retracter[T, A any]                  = stream.Retracter[T, A]
	Merger[A any]                        = stream.Merger[A]
	EmitMode                             = stream.EmitMode
	TTL                                  = stream.TTL
	WindowAssigner                       = stream.WindowAssigner
	TimeWindow                           = stream.TimeWindow
	WindowResult[K comparable, R any]    = stream.WindowResult[K, R]
	Trigger                              = stream.Trigger
	KeyedProcess[K comparable, I, O any] = stream.KeyedProcess[K, I, O]
	EncodedState                         = stream.EncodedState
	Codec[T any]                         = stream.Codec[T]
)

const (
	Insert          = stream.Insert
	Retract         = stream.Retract
	MinWatermark    = stream.MinWatermark
	MaxWatermark    = stream.MaxWatermark
	EmitPerBatch    = stream.EmitPerBatch
	EmitEveryUpdate = stream.EmitEveryUpdate
	EmitAtEnd       = stream.EmitAtEnd
)

var ErrCannotRetract = stream.ErrCannotRetract

func EncodeState[V any](v V) ([]byte, error)   { return stream.EncodeState(v) }
func DecodeState[V any](b []byte) (V, error)   { return stream.DecodeState[V](b) }
func CodecFor[T any]() (stream.Codec[T], bool) { return stream.CodecFor[T]() }
