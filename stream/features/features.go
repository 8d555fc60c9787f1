package features

import (
	"math"
	"time"

	"github.com/eddyflow/eddy/stream"
)

// EMA is an exponential moving average in event time: each value weighs 2^(-age/halfLife),
// its age measured from the latest event seen, so the average forgets at the same pace
// however irregular the events are. Events out of order are weighed by their own age, and
// events at the same instant weigh the same. The zero EMA has seen nothing.
type EMA struct {
	// Sum and Weight are the decayed sums of the values and of their weights, as of At
	// (Unix ms).
	Sum, Weight float64
	At          int64
	N           int64
}

// Add returns e with x, at time at (Unix ms), added.
func (e EMA) Add(x float64, at int64, halfLife time.Duration) EMA {
	if e.N == 0 {
		return EMA{Sum: x, Weight: 1, At: at, N: 1}
	}
	h := float64(halfLife.Milliseconds())
	if at >= e.At {
		d := math.Exp2(-float64(at-e.At) / h)
		e.Sum, e.Weight, e.At = e.Sum*d+x, e.Weight*d+1, at
	} else {
		w := math.Exp2(-float64(e.At-at) / h)
		e.Sum, e.Weight = e.Sum+w*x, e.Weight+w
	}
	e.N++
	return e
}

// Value is the average (0 before any value).
func (e EMA) Value() float64 {
	if e.Weight == 0 {
		return 0
	}
	return e.Sum / e.Weight
}

// EMAOf is the aggregator of an EMA of the values value(record) returns with their event
// time (Unix ms); halfLife must be positive.
func EMAOf[T any](value func(T) (x float64, atMillis int64), halfLife time.Duration) stream.Aggregator[T, EMA, float64] {
	if halfLife <= 0 {
		halfLife = time.Millisecond
	}
	return emaAgg[T]{value: value, halfLife: halfLife}
}

type emaAgg[T any] struct {
	value    func(T) (float64, int64)
	halfLife time.Duration
}

func (emaAgg[T]) Zero() EMA { return EMA{} }
func (a emaAgg[T]) Add(e EMA, v T) EMA {
	x, at := a.value(v)
	return e.Add(x, at, a.halfLife)
}
func (emaAgg[T]) Result(e EMA) float64 { return e.Value() }

// Moments are the count, mean and sum of squared deviations of values (Welford's online
// algorithm): numerically stable, mergeable (Chan et al.), and a value can be taken back.
type Moments struct {
	N    int64
	Mean float64
	M2   float64
}

// Add returns m with x added.
func (m Moments) Add(x float64) Moments {
	m.N++
	d := x - m.Mean
	m.Mean += d / float64(m.N)
	m.M2 += d * (x - m.Mean)
	return m
}

// Remove returns m without x, a value it was given before.
func (m Moments) Remove(x float64) Moments {
	if m.N <= 1 {
		return Moments{}
	}
	mean := (float64(m.N)*m.Mean - x) / float64(m.N-1)
	m.M2 -= (x - m.Mean) * (x - mean)
	m.N--
	m.Mean = mean
	if m.M2 < 0 {
		m.M2 = 0 // rounding
	}
	return m
}

// Merge returns the moments of the values of m and o together.
func (m Moments) Merge(o Moments) Moments {
	if m.N == 0 {
		return o
	}
	if o.N == 0 {
		return m
	}
	n := m.N + o.N
	d := o.Mean - m.Mean
	return Moments{
		N:    n,
		Mean: m.Mean + d*float64(o.N)/float64(n),
		M2:   m.M2 + o.M2 + d*d*float64(m.N)*float64(o.N)/float64(n),
	}
}

// Variance is the sample variance (n-1 in the denominator); 0 below two values.
func (m Moments) Variance() float64 {
	if m.N < 2 {
		return 0
	}
	return m.M2 / float64(m.N-1)
}

// Std is the sample standard deviation.
func (m Moments) Std() float64 { return math.Sqrt(m.Variance()) }

// MeanVarOf is the aggregator of the Moments of value(record). It retracts and merges, so
// it runs in any window, sessions included.
func MeanVarOf[T any](value func(T) float64) stream.Aggregator[T, Moments, Moments] {
	return momentsAgg[T]{value}
}

type momentsAgg[T any] struct{ value func(T) float64 }

func (momentsAgg[T]) Zero() Moments                    { return Moments{} }
func (a momentsAgg[T]) Add(m Moments, v T) Moments     { return m.Add(a.value(v)) }
func (a momentsAgg[T]) Retract(m Moments, v T) Moments { return m.Remove(a.value(v)) }
func (momentsAgg[T]) Merge(a, b Moments) Moments       { return a.Merge(b) }
func (momentsAgg[T]) Result(m Moments) Moments         { return m }

// Rolling is the Moments of the last Size values (a count window), with those values.
type Rolling struct {
	Values  []float64
	Next    int
	Moments Moments
}

// Add returns r with x added and, once it holds size values, the oldest taken out.
func (r Rolling) Add(x float64, size int) Rolling {
	if len(r.Values) < size {
		r.Values = append(r.Values, x)
		r.Moments = r.Moments.Add(x)
		return r
	}
	old := r.Values[r.Next]
	r.Values[r.Next] = x
	r.Next = (r.Next + 1) % size
	r.Moments = r.Moments.Remove(old).Add(x)
	return r
}

// RollingOf is the aggregator of the Moments of the last size values of value(record), per
// key in graph.Aggregate.
func RollingOf[T any](value func(T) float64, size int) stream.Aggregator[T, Rolling, Moments] {
	return rollingAgg[T]{value: value, size: max(size, 1)}
}

type rollingAgg[T any] struct {
	value func(T) float64
	size  int
}

func (rollingAgg[T]) Zero() Rolling { return Rolling{} }

// Add copies the ring before changing it: an accumulator is a value, and the operator may
// hold the previous one.
func (a rollingAgg[T]) Add(r Rolling, v T) Rolling {
	r.Values = append([]float64(nil), r.Values...)
	return r.Add(a.value(v), a.size)
}
func (rollingAgg[T]) Result(r Rolling) Moments { return r.Moments }

// Gap is the time between the latest event and the one before it.
type Gap struct {
	Last, Prev int64 // Unix ms
	N          int64
}

// Add returns g with an event at at; an event older than the latest only counts.
func (g Gap) Add(at int64) Gap {
	switch {
	case g.N == 0:
		g.Last = at
	case at >= g.Last:
		g.Prev, g.Last = g.Last, at
	case at > g.Prev:
		g.Prev = at
	}
	g.N++
	return g
}

// Since is the time from the previous event to the latest; 0 before two events.
func (g Gap) Since() time.Duration {
	if g.N < 2 {
		return 0
	}
	return time.Duration(g.Last-g.Prev) * time.Millisecond
}

// SinceLastOf is the aggregator of the time since the previous event of the key, as of its
// latest, with event times at(record) in Unix ms.
func SinceLastOf[T any](at func(T) int64) stream.Aggregator[T, Gap, time.Duration] {
	return gapAgg[T]{at}
}

type gapAgg[T any] struct{ at func(T) int64 }

func (gapAgg[T]) Zero() Gap                  { return Gap{} }
func (a gapAgg[T]) Add(g Gap, v T) Gap       { return g.Add(a.at(v)) }
func (gapAgg[T]) Result(g Gap) time.Duration { return g.Since() }

// Vector returns the function that makes a record's model input row, one value per
// function, in order: the features function of infer.Stage.
func Vector[T any](fs ...func(T) float64) func(T) []float32 {
	return func(v T) []float32 {
		row := make([]float32, len(fs))
		for i, f := range fs {
			row[i] = float32(f(v))
		}
		return row
	}
}
