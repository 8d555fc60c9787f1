package infer

import (
	"context"
	"errors"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Versions is a set of live versions of one model, and how records are routed among them:
// by the hash of a record's key over the versions' weights (sticky per key: A/B tests,
// canaries), plus at most one shadow version that scores every record alongside and is only
// compared, never emitted. It is safe for concurrent use; Set, Shadow and Remove may be
// called while a job runs (hot swap).
//
// A swap never lets a record be scored by a half-loaded model: Set takes a model that is
// already whole, and each batch takes the table of versions as it is when the batch
// starts, so a batch is scored by one version object from start to end. The replaced model
// is closed (when it is an io.Closer) once the last batch that took it is done.
type Versions struct {
	// mu serialises the writers of table; readers load it without a lock.
	mu    sync.Mutex
	table atomic.Pointer[versionTable]
	// stats are per version name, kept across swaps of that name.
	statsMu sync.Mutex
	stats   map[string]*versionStats
	// closing counts the replaced models waiting for their last batch to be closed.
	closing sync.WaitGroup
}

// versionTable is one immutable routing table.
type versionTable struct {
	live   []*version // sorted by name; weights > 0
	total  int
	shadow *version
}

// version is one loaded model behind a name; refs counts the batches scoring with it.
type version struct {
	name   string
	model  Model
	weight int
	stats  *versionStats
	refs   sync.WaitGroup
}

// NewVersions returns an empty set of versions.
func NewVersions() *Versions {
	v := &Versions{stats: map[string]*versionStats{}}
	v.table.Store(&versionTable{})
	return v
}

// Set makes m the live model of version name with the given routing weight (> 0): a record
// goes to a version with probability weight / sum of weights, the same version for the same
// key. Setting a name that is live swaps its model and weight; records in flight finish on
// the old model, which is then closed if it is an io.Closer.
func (v *Versions) Set(name string, m Model, weight int) error {
	if m == nil {
		return fmt.Errorf("set version %q: model is nil", name)
	}
	if weight <= 0 {
		return fmt.Errorf("set version %q: weight %d; want > 0", name, weight)
	}
	return v.update(func(t *versionTable) (*version, error) {
		nv := &version{name: name, model: m, weight: weight, stats: v.statsOf(name)}
		i, found := slices.BinarySearchFunc(t.live, name, func(a *version, n string) int { return cmpString(a.name, n) })
		if found {
			old := t.live[i]
			t.live[i] = nv
			return old, nil
		}
		t.live = slices.Insert(t.live, i, nv)
		return nil, nil
	})
}

// Shadow makes m the shadow version name: it scores every record that a live version
// scores, its output is compared with theirs (ShadowStats) and dropped. A nil m removes the
// shadow.
func (v *Versions) Shadow(name string, m Model) error {
	return v.update(func(t *versionTable) (*version, error) {
		old := t.shadow
		t.shadow = nil
		if m != nil {
			t.shadow = &version{name: name, model: m, stats: v.statsOf(name)}
		}
		return old, nil
	})
}

// Remove takes version name out of the routing; its records go to the others from the next
// batch on. Removing the last live version is an error.
func (v *Versions) Remove(name string) error {
	return v.update(func(t *versionTable) (*version, error) {
		i := slices.IndexFunc(t.live, func(x *version) bool { return x.name == name })
		if i < 0 {
			return nil, fmt.Errorf("remove version %q: not live", name)
		}
		if len(t.live) == 1 {
			return nil, fmt.Errorf("remove version %q: it is the last live version", name)
		}
		old := t.live[i]
		t.live = slices.Delete(t.live, i, i+1)
		return old, nil
	})
}

// update applies change to a copy of the table and publishes it; the version it replaced
// is closed in the background once its last batch is done.
func (v *Versions) update(change func(t *versionTable) (*version, error)) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	cur := v.table.Load()
	next := &versionTable{live: slices.Clone(cur.live), shadow: cur.shadow}
	old, err := change(next)
	if err != nil {
		return err
	}
	for _, x := range next.live {
		next.total += x.weight
	}
	v.table.Store(next)
	if old != nil {
		if c, ok := old.model.(io.Closer); ok {
			// Ends when the batches that hold old are done; Close waits for it.
			v.closing.Go(func() {
				old.refs.Wait()
				_ = c.Close()
			})
		}
	}
	return nil
}

// Close waits for the replaced models to be closed, then closes the live and shadow models
// that are io.Closers. Call it once no job uses v any more.
func (v *Versions) Close() error {
	v.closing.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	t := v.table.Load()
	var errs []error
	for _, x := range append(slices.Clone(t.live), t.shadow) {
		if x == nil {
			continue
		}
		if c, ok := x.model.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close model version %q: %w", x.name, err))
			}
		}
	}
	v.table.Store(&versionTable{})
	return errors.Join(errs...)
}

// acquire returns the current table with a reference on each of its versions, released by
// release. The reference is taken under mu, so that no writer can publish a new table and
// start waiting on an old version between the load and the Add.
func (v *Versions) acquire() *versionTable {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := v.table.Load()
	for _, x := range t.live {
		x.refs.Add(1)
	}
	if t.shadow != nil {
		t.shadow.refs.Add(1)
	}
	return t
}

func (t *versionTable) release() {
	for _, x := range t.live {
		x.refs.Done()
	}
	if t.shadow != nil {
		t.shadow.refs.Done()
	}
}

// route picks the live version for a key hash.
func (t *versionTable) route(hash uint64) *version {
	if len(t.live) == 1 {
		return t.live[0]
	}
	b := int(hash % uint64(t.total))
	for _, x := range t.live {
		if b < x.weight {
			return x
		}
		b -= x.weight
	}
	return t.live[len(t.live)-1]
}

func (v *Versions) statsOf(name string) *versionStats {
	v.statsMu.Lock()
	defer v.statsMu.Unlock()
	s := v.stats[name]
	if s == nil {
		s = &versionStats{}
		v.stats[name] = s
	}
	return s
}

// Live returns the names of the live versions and their weights.
func (v *Versions) Live() map[string]int {
	out := map[string]int{}
	for _, x := range v.table.Load().live {
		out[x.name] = x.weight
	}
	return out
}

// VersionStats are the counters of one version name, over every model it had.
type VersionStats struct {
	// Records and Batches scored successfully; Failures counts failed requests (each retry
	// that failed is one).
	Records, Batches, Failures int64
	// Latency is the total time of the successful requests; MaxLatency the longest;
	// P50 and P99 their quantiles, to within a factor of 2 (the upper edge of a
	// power-of-two bucket).
	Latency, MaxLatency time.Duration
	P50, P99            time.Duration
	// Shadow only: ShadowRecords compared, Disagreements among them (an output element more
	// than ShadowTolerance from the live version's), MaxDiff the largest difference seen.
	ShadowRecords, Disagreements int64
	MaxDiff                      float64
}

// ShadowTolerance is the absolute difference between a shadow's output element and the live
// version's above which the record counts as a disagreement.
const ShadowTolerance = 1e-6

type versionStats struct {
	records, batches, failures atomic.Int64
	latency, maxLatency        atomic.Int64
	// buckets[i] counts the requests that took [2^i, 2^(i+1)) µs (bucket 0: under 2 µs).
	buckets                 [latencyBuckets]atomic.Int64
	shadowRecords, disagree atomic.Int64
	maxDiffBits             atomic.Uint64 // float64 bits; differences are >= 0, so bits order as values
}

// latencyBuckets covers up to 2^40 µs (12 days) in powers of two.
const latencyBuckets = 41

func latencyBucket(d time.Duration) int {
	us := d.Microseconds()
	if us < 2 {
		return 0
	}
	return min(bits.Len64(uint64(us))-1, latencyBuckets-1)
}

// quantile is the upper edge of the bucket that holds the q-th request by latency.
func (s *versionStats) quantile(q float64) time.Duration {
	var counts [latencyBuckets]int64
	var total int64
	for i := range counts {
		counts[i] = s.buckets[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return time.Duration(int64(1)<<(i+1)) * time.Microsecond
		}
	}
	return time.Duration(int64(1)<<latencyBuckets) * time.Microsecond
}

func (s *versionStats) ok(rows int, d time.Duration) {
	s.records.Add(int64(rows))
	s.batches.Add(1)
	s.latency.Add(int64(d))
	s.buckets[latencyBucket(d)].Add(1)
	for {
		cur := s.maxLatency.Load()
		if int64(d) <= cur || s.maxLatency.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// Stats returns the counters of every version name that was ever set.
func (v *Versions) Stats() map[string]VersionStats {
	v.statsMu.Lock()
	defer v.statsMu.Unlock()
	out := make(map[string]VersionStats, len(v.stats))
	for _, name := range slices.Sorted(maps.Keys(v.stats)) {
		s := v.stats[name]
		out[name] = VersionStats{
			Records: s.records.Load(), Batches: s.batches.Load(), Failures: s.failures.Load(),
			Latency: time.Duration(s.latency.Load()), MaxLatency: time.Duration(s.maxLatency.Load()),
			P50: s.quantile(0.5), P99: s.quantile(0.99),
			ShadowRecords: s.shadowRecords.Load(), Disagreements: s.disagree.Load(),
			MaxDiff: math.Float64frombits(s.maxDiffBits.Load()),
		}
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Infer scores rows with the live versions, each row routed by its position as the stage
// does without a Key; the shadow is not called. It lets a Versions stand where a Model is
// expected.
func (v *Versions) Infer(ctx context.Context, rows [][]float32) ([][]float32, error) {
	t := v.acquire()
	defer t.release()
	if len(t.live) == 0 {
		return nil, errors.New("no live model version")
	}
	out := make([][]float32, len(rows))
	byVersion := map[*version][]int{}
	for i := range rows {
		x := t.route(xxhash.Sum64String(strconv.Itoa(i)))
		byVersion[x] = append(byVersion[x], i)
	}
	for x, pos := range byVersion {
		sub := make([][]float32, len(pos))
		for j, p := range pos {
			sub[j] = rows[p]
		}
		got, err := x.model.Infer(ctx, sub)
		if err == nil {
			err = checkOutput(sub, got)
		}
		if err != nil {
			return nil, fmt.Errorf("model version %q: %w", x.name, err)
		}
		for j, p := range pos {
			out[p] = got[j]
		}
	}
	return out, nil
}
