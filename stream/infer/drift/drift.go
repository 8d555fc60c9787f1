// Package drift detects when the distribution of a value (a feature, a model's score) moves
// away from a reference: the population stability index (PSI) over bins cut at the
// reference's quantiles, and the two-sample Kolmogorov–Smirnov statistic, per event-time
// window.
//
//	ref, err := drift.NewReference(trainingScores, 10)
//	d := drift.Detector{Reference: ref, PSI: 0.2, Alpha: 0.001}
//	events := drift.Watch(scores, func(s Scored) float64 { return s.Score }, stream.Tumbling(5*time.Minute), d)
//
// The statistics are plain functions; Watch runs them per window in a graph and emits an
// Event for each window that drifted.
package drift

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Reference is the distribution drift is measured against: a sample, sorted, and the bins
// of the PSI (cut at its quantiles, so each holds about the same share of it).
type Reference struct {
	sorted []float64
	// edges are the inner bin edges: bin i holds values in (edges[i-1], edges[i]].
	edges []float64
	props []float64
}

// NewReference returns the reference of sample, with PSI bins at its quantiles (fewer when
// the sample has fewer distinct values).
func NewReference(sample []float64, bins int) (*Reference, error) {
	if len(sample) == 0 {
		return nil, errors.New("drift reference: empty sample")
	}
	if bins < 2 {
		return nil, fmt.Errorf("drift reference: %d bins; want at least 2", bins)
	}
	r := &Reference{sorted: slices.Clone(sample)}
	for _, x := range r.sorted {
		if math.IsNaN(x) {
			return nil, errors.New("drift reference: NaN in the sample")
		}
	}
	slices.Sort(r.sorted)
	for i := 1; i < bins; i++ {
		e := r.sorted[(len(r.sorted)-1)*i/bins]
		if len(r.edges) == 0 || e > r.edges[len(r.edges)-1] {
			r.edges = append(r.edges, e)
		}
	}
	r.props = r.proportions(r.sorted)
	return r, nil
}

func (r *Reference) bin(x float64) int {
	return sort.SearchFloat64s(r.edges, x) // first edge >= x
}

func (r *Reference) proportions(xs []float64) []float64 {
	p := make([]float64, len(r.edges)+1)
	for _, x := range xs {
		p[r.bin(x)]++
	}
	for i := range p {
		p[i] /= float64(len(xs))
	}
	return p
}

// psiFloor stands in for an empty bin's share, so that the index stays finite.
const psiFloor = 1e-4

// PSI is the population stability index of xs against the reference:
// Σ (o - e)·ln(o / e) over the bins. Below 0.1 is usually read as no shift, above 0.25 as a
// large one.
func (r *Reference) PSI(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	obs := r.proportions(xs)
	psi := 0.0
	for i, e := range r.props {
		o := math.Max(obs[i], psiFloor)
		e = math.Max(e, psiFloor)
		psi += (o - e) * math.Log(o/e)
	}
	return psi
}

// KS is the two-sample Kolmogorov–Smirnov statistic of xs against the reference sample.
func (r *Reference) KS(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return ksSorted(r.sorted, s)
}

// KS is the two-sample Kolmogorov–Smirnov statistic: the largest distance between the
// empirical distribution functions of a and b.
func KS(a, b []float64) float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return ksSorted(a, b)
}

func ksSorted(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	i, j, d := 0, 0, 0.0
	for i < len(a) && j < len(b) {
		x := math.Min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// KSCritical is the KS statistic above which samples of sizes n and m differ at
// significance alpha (the asymptotic bound c(α)·√((n+m)/(n·m)), c(α) = √(−ln(α/2)/2)).
func KSCritical(alpha float64, n, m int) float64 {
	return math.Sqrt(-math.Log(alpha/2)/2) * math.Sqrt(float64(n+m)/float64(n*m))
}

// Detector says whether a window drifted: its PSI is above PSI, or its KS statistic is
// above the critical value at Alpha. A zero threshold is not checked. Windows of fewer than
// MinSamples values (default 30) are not judged.
type Detector struct {
	Reference  *Reference
	PSI        float64
	Alpha      float64
	MinSamples int
}

// Check measures xs against the reference.
func (d Detector) Check(xs []float64) (psi, ks float64, drifted bool) {
	minimum := d.MinSamples
	if minimum == 0 {
		minimum = 30
	}
	if len(xs) < minimum {
		return 0, 0, false
	}
	psi, ks = d.Reference.PSI(xs), d.Reference.KS(xs)
	drifted = (d.PSI > 0 && psi > d.PSI) ||
		(d.Alpha > 0 && ks > KSCritical(d.Alpha, len(xs), len(d.Reference.sorted)))
	return psi, ks, drifted
}

// Event is a window that drifted.
type Event struct {
	// Start and End bound the window, [Start, End) in Unix ms.
	Start, End int64
	// N is how many values the window held.
	N   int
	PSI float64
	KS  float64
}
