// Package online learns a model from a labelled stream while the job runs, and measures
// models against labels: a logistic regression trained by stochastic gradient descent, whose
// weights are published as a new model version every N labels (to hot-swap into an
// infer.Versions), ROC-AUC, and precision and recall at a threshold.
//
//	l := online.NewLogistic(width, 0.05)
//	online.Train(labelled, example, l, 1000, func(n int64, m infer.Model) {
//		versions.Set("online", m, 10) // every 1000 labels, the new weights take over
//	})
package online

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/onnxmodel"
)

// Logistic is a logistic regression, p(y=1|x) = sigmoid(w·x + b), trained one example at
// a time. It is safe for concurrent use: Update and the readers take a lock.
type Logistic struct {
	// mu guards w, b and n.
	mu sync.RWMutex
	w  []float64
	b  float64
	n  int64
	// rate is the learning rate; l2 the weight decay per step.
	rate, l2 float64
}

// NewLogistic returns an untrained model of width inputs, learning at rate (0.01 to 0.1 is
// usual for standardised features).
func NewLogistic(width int, rate float64) *Logistic {
	return &Logistic{w: make([]float64, width), rate: rate, l2: 1e-4}
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Predict returns p(y=1|x).
func (l *Logistic) Predict(x []float32) float64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return sigmoid(l.dot(x))
}

func (l *Logistic) dot(x []float32) float64 {
	z := l.b
	for i, v := range x[:min(len(x), len(l.w))] {
		z += l.w[i] * float64(v)
	}
	return z
}

// Update takes one gradient step on the log loss of (x, label). A row of another width is
// an error.
func (l *Logistic) Update(x []float32, label bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(x) != len(l.w) {
		return fmt.Errorf("online logistic: a row of %d values; the model takes %d", len(x), len(l.w))
	}
	y := 0.0
	if label {
		y = 1
	}
	g := sigmoid(l.dot(x)) - y
	for i, v := range x {
		l.w[i] -= l.rate * (g*float64(v) + l.l2*l.w[i])
	}
	l.b -= l.rate * g
	l.n++
	return nil
}

// Seen is how many examples the model has learned from.
func (l *Logistic) Seen() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.n
}

// Weights returns a copy of the weights and the bias.
func (l *Logistic) Weights() ([]float64, float64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.w), l.b
}

// Snapshot returns the model as it is now, frozen: later updates do not change it.
func (l *Logistic) Snapshot() infer.Model {
	w, b := l.Weights()
	frozen := &Logistic{w: w, b: b}
	return infer.RowFunc(func(row []float32) []float32 { return []float32{float32(sigmoid(frozen.dot(row)))} })
}

// ONNX returns the model as it is now as an ONNX model (onnxmodel.Logistic), to load in
// ONNX Runtime or ship to a model server.
func (l *Logistic) ONNX(version int64) ([]byte, error) {
	w, b := l.Weights()
	col := make([][]float32, len(w))
	for i, v := range w {
		col[i] = []float32{float32(v)}
	}
	return onnxmodel.Logistic(col, []float32{float32(b)}, onnxmodel.Options{Version: version, Name: "online-logistic"})
}

// Train learns from the labelled records of s with l, in one instance (the model is one):
// example gives a record's features and label. Every `every` examples it calls publish with
// the count and a frozen snapshot of the model, which publish may set as a version of an
// infer.Versions (hot swap). It returns the stream of the counts published at.
//
// The learner lives outside the job's checkpoints: a restored job goes on learning from the
// weights it has, and a record replayed after a restore is learned from again. What
// publish stores (a version, an ONNX file) is the durable artefact.
func Train[T any](s graph.Stream[T], example func(T) ([]float32, bool), l *Logistic, every int64, publish func(n int64, m infer.Model)) graph.Stream[int64] {
	one := graph.KeyBy(s, func(T) int { return 0 }, graph.WithCodec(stream.JSON[T]()))
	return graph.Process(one, stream.KeyedProcess[int, T, int64]{
		OnRecord: func(_ stream.Context[int], v T, out stream.Emitter[int64]) error {
			x, y := example(v)
			if err := l.Update(x, y); err != nil {
				return err
			}
			if n := l.Seen(); every > 0 && n%every == 0 {
				publish(n, l.Snapshot())
				out.Emit(n)
			}
			return nil
		},
	}, graph.Name("train"))
}

// AUC is the area under the ROC curve of scores against labels: the chance that a random
// positive scores above a random negative (ties count half). NaN without both classes.
func AUC(scores []float64, labels []bool) float64 {
	type pair struct {
		s   float64
		pos bool
	}
	ps := make([]pair, len(scores))
	var pos, neg float64
	for i := range scores {
		ps[i] = pair{scores[i], labels[i]}
		if labels[i] {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	slices.SortFunc(ps, func(a, b pair) int { return cmp.Compare(a.s, b.s) })
	// Sum of the positives' ranks (1-based, ties given their mean rank).
	rankSum := 0.0
	for i := 0; i < len(ps); {
		j := i
		for j < len(ps) && ps[j].s == ps[i].s {
			j++
		}
		mean := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if ps[k].pos {
				rankSum += mean
			}
		}
		i = j
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// Confusion counts predictions at a threshold against labels.
type Confusion struct{ TP, FP, TN, FN int64 }

// Add counts one prediction: score ≥ threshold is a positive prediction.
func (c Confusion) Add(score, threshold float64, label bool) Confusion {
	switch pred := score >= threshold; {
	case pred && label:
		c.TP++
	case pred:
		c.FP++
	case label:
		c.FN++
	default:
		c.TN++
	}
	return c
}

// Precision is TP / (TP + FP); NaN with no positive prediction.
func (c Confusion) Precision() float64 { return float64(c.TP) / float64(c.TP+c.FP) }

// Recall is TP / (TP + FN); NaN with no positive label.
func (c Confusion) Recall() float64 { return float64(c.TP) / float64(c.TP+c.FN) }
