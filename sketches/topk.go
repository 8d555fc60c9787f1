package sketches

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
)

// TopKConfig sizes a Top-K sketch.
type TopKConfig struct {
	// Capacity is the number of counters kept. Every item seen more than N/Capacity times
	// (N the total count) is among them, and each count is at most N/Capacity too high.
	// Memory is about Capacity·(64 + item length) bytes. Keep it well above the k you ask
	// Top for (10× is plenty on skewed data). 1 to 16,777,216; 0 means 1,000.
	Capacity int
}

const maxTopKCapacity = 1 << 24

func (c *TopKConfig) validate() error {
	if c.Capacity == 0 {
		c.Capacity = 1000
	}
	if c.Capacity < 1 || c.Capacity > maxTopKCapacity {
		return fmt.Errorf("top-k: capacity %d: want 1 to %d", c.Capacity, maxTopKCapacity)
	}
	return nil
}

// Item is one heavy hitter: its estimated count and the most that count may exceed the
// true one by. Count − Error ≤ true count ≤ Count; Error 0 means the count is exact.
type Item struct {
	Item  string `json:"item"`
	Count uint64 `json:"count"`
	Error uint64 `json:"error,omitempty"`
}

// TopK finds the most frequent items with Space-Saving (Metwally, Agrawal and El Abbadi,
// 2005): Capacity counters; an item not counted yet takes over the smallest counter, adding
// to its count and inheriting it as the item's error bound. With N the total count and
// c the capacity:
//
//   - every item whose true count exceeds N/c holds a counter;
//   - a counted item's estimate f̂ satisfies f ≤ f̂ ≤ f + Error, with Error ≤ N/c;
//   - an item counted since its first occurrence has Error 0 and an exact count.
//
// Merge follows Agarwal et al.'s mergeable summaries (2012) and keeps these bounds.
//
// A TopK is not safe for concurrent use.
type TopK struct {
	capacity int
	n        uint64
	index    map[string]int // item → position in heap
	heap     ssHeap
}

type ssCounter struct {
	item       string
	count, err uint64
}

// ssHeap is a min-heap of counters by count, that keeps the index map up to date.
type ssHeap struct {
	c     []ssCounter
	index map[string]int
}

func (h *ssHeap) Len() int           { return len(h.c) }
func (h *ssHeap) Less(i, j int) bool { return h.c[i].count < h.c[j].count }
func (h *ssHeap) Swap(i, j int) {
	h.c[i], h.c[j] = h.c[j], h.c[i]
	h.index[h.c[i].item] = i
	h.index[h.c[j].item] = j
}
func (h *ssHeap) Push(x any) {
	c := x.(ssCounter)
	h.index[c.item] = len(h.c)
	h.c = append(h.c, c)
}
func (h *ssHeap) Pop() any {
	c := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	delete(h.index, c.item)
	return c
}

// NewTopK returns an empty sketch.
func NewTopK(cfg TopKConfig) (*TopK, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newTopK(cfg.Capacity, 0), nil
}

func newTopK(capacity, size int) *TopK {
	t := &TopK{capacity: capacity, index: make(map[string]int, size)}
	t.heap.index = t.index
	t.heap.c = make([]ssCounter, 0, size)
	return t
}

// Capacity returns the number of counters.
func (t *TopK) Capacity() int { return t.capacity }

// N returns the total count added.
func (t *TopK) N() uint64 { return t.n }

// Add counts one occurrence of item.
func (t *TopK) Add(item string) { t.AddN(item, 1) }

// AddN counts n occurrences of item.
func (t *TopK) AddN(item string, n uint64) {
	if n == 0 {
		return
	}
	t.n += n
	if i, ok := t.index[item]; ok {
		t.heap.c[i].count += n
		heap.Fix(&t.heap, i)
		return
	}
	if len(t.heap.c) < t.capacity {
		heap.Push(&t.heap, ssCounter{item: item, count: n})
		return
	}
	least := t.heap.c[0]
	delete(t.index, least.item)
	t.heap.c[0] = ssCounter{item: item, count: least.count + n, err: least.count}
	t.index[item] = 0
	heap.Fix(&t.heap, 0)
}

// Count returns item's estimated count and error bound, and whether it holds a counter. An
// item without one was seen at most Min() times.
func (t *TopK) Count(item string) (count, err uint64, ok bool) {
	i, ok := t.index[item]
	if !ok {
		return 0, 0, false
	}
	return t.heap.c[i].count, t.heap.c[i].err, true
}

// Min returns the smallest count held when every counter is taken, else 0: a bound on the
// true count of every item without a counter.
func (t *TopK) Min() uint64 {
	if len(t.heap.c) < t.capacity {
		return 0
	}
	return t.heap.c[0].count
}

// Top returns the k items of highest estimated count, highest first (ties by item), or
// all of them when fewer are held.
func (t *TopK) Top(k int) []Item {
	all := make([]Item, len(t.heap.c))
	for i, c := range t.heap.c {
		all[i] = Item{Item: c.item, Count: c.count, Error: c.err}
	}
	slices.SortFunc(all, func(a, b Item) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Item, b.Item)
	})
	if k >= 0 && k < len(all) {
		all = all[:k:k]
	}
	return all
}

// Merge adds o's counts to t. Both must have the same capacity; otherwise t is unchanged and
// the error wraps ErrIncompatible. An item held by one side only is charged the other
// side's Min as both count and error, then the Capacity largest counters are kept: the
// bounds above hold for the merged stream.
func (t *TopK) Merge(o *TopK) error {
	if t.capacity != o.capacity {
		return fmt.Errorf("merge top-k of capacity %d with one of %d: %w", t.capacity, o.capacity, ErrIncompatible)
	}
	tMin, oMin := t.Min(), o.Min()
	merged := make([]ssCounter, 0, len(t.heap.c)+len(o.heap.c))
	for _, c := range t.heap.c {
		if j, ok := o.index[c.item]; ok {
			oc := o.heap.c[j]
			c.count += oc.count
			c.err += oc.err
		} else {
			c.count += oMin
			c.err += oMin
		}
		merged = append(merged, c)
	}
	for _, c := range o.heap.c {
		if _, ok := t.index[c.item]; !ok {
			c.count += tMin
			c.err += tMin
			merged = append(merged, c)
		}
	}
	if len(merged) > t.capacity {
		slices.SortFunc(merged, func(a, b ssCounter) int {
			if c := cmp.Compare(b.count, a.count); c != 0 {
				return c
			}
			return cmp.Compare(a.item, b.item)
		})
		merged = merged[:t.capacity]
	}
	clear(t.index)
	t.heap.c = merged
	for i, c := range merged {
		t.index[c.item] = i
	}
	heap.Init(&t.heap)
	t.n += o.n
	return nil
}

// Clone returns a copy of t.
func (t *TopK) Clone() *TopK {
	c := newTopK(t.capacity, len(t.heap.c))
	c.n = t.n
	c.heap.c = append(c.heap.c, t.heap.c...)
	for k, v := range t.index {
		c.index[k] = v
	}
	return c
}

// MarshalBinary encodes the sketch: capacity, N, then each counter's item, count and error.
func (t *TopK) MarshalBinary() ([]byte, error) {
	size := 16
	for _, c := range t.heap.c {
		size += 20 + len(c.item)
	}
	b := header(kindTopK, size)
	b = appendU32(b, uint32(t.capacity))
	b = appendU64(b, t.n)
	b = appendU32(b, uint32(len(t.heap.c)))
	for _, c := range t.heap.c {
		b = appendU32(b, uint32(len(c.item)))
		b = append(b, c.item...)
		b = appendU64(b, c.count)
		b = appendU64(b, c.err)
	}
	return seal(b), nil
}

// UnmarshalBinary replaces t with the sketch encoded in data. Bad data is an error and
// leaves t unchanged.
func (t *TopK) UnmarshalBinary(data []byte) error {
	d, err := open(data, kindTopK)
	if err != nil {
		return err
	}
	capacity, n := d.u32(), d.u64()
	count := d.count("counters", 20)
	if d.err != nil {
		return d.err
	}
	switch {
	case capacity < 1 || capacity > maxTopKCapacity:
		return fmt.Errorf("unmarshal top-k: capacity %d: want 1 to %d", capacity, maxTopKCapacity)
	case count > int(capacity):
		return fmt.Errorf("unmarshal top-k: %d counters, more than the capacity %d", count, capacity)
	}
	nt := newTopK(int(capacity), count)
	nt.n = n
	for i := range count {
		l := d.u32()
		item := string(d.take(int(min(l, 1<<31-1))))
		c := ssCounter{item: item, count: d.u64(), err: d.u64()}
		if d.err != nil {
			return d.err
		}
		if c.err > c.count {
			return fmt.Errorf("unmarshal top-k: counter %d has error %d above its count %d", i, c.err, c.count)
		}
		if _, dup := nt.index[item]; dup {
			return fmt.Errorf("unmarshal top-k: counter %d repeats item %q", i, item)
		}
		nt.index[item] = len(nt.heap.c)
		nt.heap.c = append(nt.heap.c, c)
	}
	if err := d.end(); err != nil {
		return err
	}
	heap.Init(&nt.heap)
	*t = *nt
	t.heap.index = t.index
	return nil
}
