package sketches

import (
	"encoding"
	"fmt"
	"reflect"

	"github.com/eddyflow/eddy/stream"
)

// The window and running aggregators below fold records into a sketch. They implement
// stream.Aggregator and stream.Merger, so they work with every window kind (sessions merge)
// and with per-worker partials; they do not implement stream.Retracter: a sketch cannot
// take an item back, so a Retract record is an error of the stage.
//
// Each accumulator is a pointer to a sketch: Zero returns nil and the first Add allocates,
// Add changes the sketch in place and returns it, and Merge may change and return its first
// argument but never changes its second. Result returns a value that shares nothing with
// the accumulator, so a result already sent (a changelog's last result) is not changed by
// later records.

// Distinct is an approximate distinct count: a HyperLogLog of the ids of the records.
type Distinct[T any] struct {
	id  func(T) string
	cfg HyperLogLogConfig
}

// ApproxDistinct returns an aggregator of the number of distinct id(v) (HyperLogLog; the
// error bound is that of HyperLogLogConfig.Precision).
func ApproxDistinct[T any](id func(T) string, cfg HyperLogLogConfig) (*Distinct[T], error) {
	if id == nil {
		return nil, fmt.Errorf("approximate distinct: id function is nil")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("approximate distinct: %w", err)
	}
	return &Distinct[T]{id: id, cfg: cfg}, nil
}

// Zero returns the empty accumulator, nil.
func (a *Distinct[T]) Zero() *HyperLogLog { return nil }

// Add adds id(v).
func (a *Distinct[T]) Add(acc *HyperLogLog, v T) *HyperLogLog {
	if acc == nil {
		acc = &HyperLogLog{p: a.cfg.Precision, sparse: true}
	}
	acc.Add(a.id(v))
	return acc
}

// Merge returns the union of x and y.
func (a *Distinct[T]) Merge(x, y *HyperLogLog) *HyperLogLog {
	return mergeSketches(x, y)
}

// Result returns the estimated number of distinct ids.
func (a *Distinct[T]) Result(acc *HyperLogLog) uint64 {
	if acc == nil {
		return 0
	}
	return acc.Estimate()
}

// TopItems is an approximate top-k: Space-Saving over the items of the records.
type TopItems[T any] struct {
	item func(T) string
	k    int
	cfg  TopKConfig
}

// ApproxTopK returns an aggregator of the k most frequent item(v), highest count first,
// with Space-Saving's bounds (see TopK). cfg.Capacity 0 means max(1000, 10·k).
func ApproxTopK[T any](item func(T) string, k int, cfg TopKConfig) (*TopItems[T], error) {
	if item == nil {
		return nil, fmt.Errorf("approximate top-k: item function is nil")
	}
	if k < 1 {
		return nil, fmt.Errorf("approximate top-k: k %d: want at least 1", k)
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = max(1000, 10*k)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("approximate top-k: %w", err)
	}
	return &TopItems[T]{item: item, k: k, cfg: cfg}, nil
}

// Zero returns the empty accumulator, nil.
func (a *TopItems[T]) Zero() *TopK { return nil }

// Add counts item(v).
func (a *TopItems[T]) Add(acc *TopK, v T) *TopK {
	if acc == nil {
		acc = newTopK(a.cfg.Capacity, 0)
	}
	acc.Add(a.item(v))
	return acc
}

// Merge returns the counts of x and y together.
func (a *TopItems[T]) Merge(x, y *TopK) *TopK {
	return mergeSketches(x, y)
}

// Result returns the top k items.
func (a *TopItems[T]) Result(acc *TopK) []Item {
	if acc == nil {
		return nil
	}
	return acc.Top(a.k)
}

// QuantileValues is an approximate quantiles aggregator: a KLL sketch of the values of the
// records.
type QuantileValues[T any] struct {
	value func(T) float64
	qs    []float64
	cfg   QuantilesConfig
}

// ApproxQuantiles returns an aggregator whose result holds the estimated quantile of each of
// qs (in [0, 1], e.g. 0.5, 0.95, 0.99) of value(v), in the order given (see Quantiles for
// the rank error).
func ApproxQuantiles[T any](value func(T) float64, qs []float64, cfg QuantilesConfig) (*QuantileValues[T], error) {
	if value == nil {
		return nil, fmt.Errorf("approximate quantiles: value function is nil")
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("approximate quantiles: no quantiles asked for")
	}
	for _, q := range qs {
		if !(q >= 0 && q <= 1) {
			return nil, fmt.Errorf("approximate quantiles: quantile %v: want it in [0, 1]", q)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("approximate quantiles: %w", err)
	}
	return &QuantileValues[T]{value: value, qs: append([]float64(nil), qs...), cfg: cfg}, nil
}

// Zero returns the empty accumulator, nil.
func (a *QuantileValues[T]) Zero() *Quantiles { return nil }

// Add adds value(v).
func (a *QuantileValues[T]) Add(acc *Quantiles, v T) *Quantiles {
	if acc == nil {
		acc, _ = NewQuantiles(a.cfg) // the config was checked
	}
	acc.Add(a.value(v))
	return acc
}

// Merge returns the values of x and y together.
func (a *QuantileValues[T]) Merge(x, y *Quantiles) *Quantiles {
	return mergeSketches(x, y)
}

// Result returns the quantiles, in the order asked; nil for no values.
func (a *QuantileValues[T]) Result(acc *Quantiles) []float64 {
	if acc == nil || acc.N() == 0 {
		return nil
	}
	return acc.Quantiles(a.qs...)
}

// Frequencies is an approximate frequency table: a Count-Min sketch of the items of the
// records.
type Frequencies[T any] struct {
	item func(T) string
	cfg  CountMinConfig
}

// ApproxFrequency returns an aggregator whose result is a Count-Min sketch of item(v), to
// ask for any item's estimated count (see CountMin for the bound). The result is a copy
// of the accumulator: it costs the sketch's size per firing.
func ApproxFrequency[T any](item func(T) string, cfg CountMinConfig) (*Frequencies[T], error) {
	if item == nil {
		return nil, fmt.Errorf("approximate frequency: item function is nil")
	}
	if _, _, err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("approximate frequency: %w", err)
	}
	return &Frequencies[T]{item: item, cfg: cfg}, nil
}

// Zero returns the empty accumulator, nil.
func (a *Frequencies[T]) Zero() *CountMin { return nil }

// Add counts item(v).
func (a *Frequencies[T]) Add(acc *CountMin, v T) *CountMin {
	if acc == nil {
		acc, _ = NewCountMin(a.cfg) // the config was checked
	}
	acc.Add(a.item(v))
	return acc
}

// Merge returns the counts of x and y together.
func (a *Frequencies[T]) Merge(x, y *CountMin) *CountMin {
	return mergeSketches(x, y)
}

// Result returns a copy of the sketch; nil for no records.
func (a *Frequencies[T]) Result(acc *CountMin) *CountMin {
	if acc == nil {
		return nil
	}
	return acc.Clone()
}

// must panics on a merge error: the accumulators of one aggregator share its parameters, so
// an error means an accumulator came from elsewhere (a bug).
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("sketches: merge of accumulators of one aggregator: %v", err))
	}
}

// binarySketch is what Codec needs of a sketch type.
type binarySketch[S any] interface {
	*S
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// Codec returns the stream.Codec of a sketch type, from its MarshalBinary and
// UnmarshalBinary, so that sketches (accumulators, results) cross re-partitioning
// boundaries and go into state: Codec[HyperLogLog]() is a stream.Codec[*HyperLogLog]. A
// nil sketch encodes as no bytes and decodes back to nil.
func Codec[S any, P binarySketch[S]]() stream.Codec[P] { return sketchCodec[S, P]{} }

type sketchCodec[S any, P binarySketch[S]] struct{}

func (sketchCodec[S, P]) Append(dst []byte, v P) ([]byte, error) {
	if v == nil {
		return dst, nil
	}
	b, err := v.MarshalBinary()
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", reflect.TypeFor[S](), err)
	}
	return append(dst, b...), nil
}

func (sketchCodec[S, P]) Decode(src []byte) (P, error) {
	if len(src) == 0 {
		return nil, nil
	}
	v := P(new(S))
	if err := v.UnmarshalBinary(src); err != nil {
		return nil, fmt.Errorf("decode %s: %w", reflect.TypeFor[S](), err)
	}
	return v, nil
}

// mergeSketches merges y into x, the accumulators of two partial aggregates; nil is the
// empty one. Sketches of one aggregator share their parameters, so Merge cannot fail.
func mergeSketches[S interface {
	comparable
	Merge(S) error
	Clone() S
}](x, y S) S {
	var none S
	if y == none {
		return x
	}
	if x == none {
		return y.Clone()
	}
	must(x.Merge(y))
	return x
}
