package persistence

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/badger/v4"
)

// A keyFilter is a Bloom filter of the keys one generation of keyed state holds: a key it
// does not contain is not there, so looking it up in Badger can be skipped. It grows as keys
// come (a chain of filters, each twice the size of the one before, since how many keys a
// key group will hold is not known up front); it does not shrink when keys are deleted, so
// deleted keys cost a lookup, as false positives do.
type keyFilter struct {
	mu      sync.Mutex
	filters []*bloom.BloomFilter
	// room is how many more keys the newest filter takes before the next one starts.
	room uint
	// lookups and skipped count the keys GetBatch looked up in Badger and those the
	// filter answered, for tests and statistics.
	lookups, skipped atomic.Uint64
}

// Each filter of a chain has filterBitsPerKey bits per key it is sized for and
// filterHashes hash functions: about 0.8% false positives when full, so that a chain of
// seven (firstFilterKeys, then twice as many each: a key group that grew to 2 M keys)
// answers all but about 6% of new keys itself. 10 bits a key is 25 MiB for 20 M keys (up to
// twice that while the newest filter fills).
const (
	filterBitsPerKey = 10
	filterHashes     = 7
	firstFilterKeys  = 1 << 14
)

func newKeyFilter() *keyFilter { return &keyFilter{} }

// mayContain reports whether key may be in the state: false means it is not.
func (f *keyFilter) mayContain(key []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mayContainLocked(bloom.Locations(key, filterHashes))
}

func (f *keyFilter) mayContainLocked(locs []uint64) bool {
	for i := len(f.filters) - 1; i >= 0; i-- {
		if f.filters[i].TestLocations(locs) {
			return true
		}
	}
	return false
}

// add records that the state holds key.
func (f *keyFilter) add(key []byte) {
	locs := bloom.Locations(key, filterHashes)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mayContainLocked(locs) {
		return // there already (or a false positive, which costs a lookup either way)
	}
	if f.room == 0 {
		n := uint(firstFilterKeys)
		if len(f.filters) > 0 {
			n = 2 * f.filters[len(f.filters)-1].Cap() / filterBitsPerKey
		}
		f.filters = append(f.filters, bloom.New(n*filterBitsPerKey, filterHashes))
		f.room = n
	}
	newest := f.filters[len(f.filters)-1]
	m := uint64(newest.Cap())
	for _, l := range locs {
		newest.BitSet().Set(uint(l % m))
	}
	f.room--
}

// counted adds to the lookup statistics.
func (f *keyFilter) counted(lookups, skipped int) {
	f.lookups.Add(uint64(lookups))
	f.skipped.Add(uint64(skipped))
}

// stateGenerations holds what the KeyedValues of each generation of keyed state opened in
// this process share, by the generation's prefix.
type stateGenerations struct {
	mu sync.Mutex
	by map[string]*generation
}

// generationOf returns the shared state of the generation under prefix; the first
// KeyedValues of it in this process builds its key filter from the keys it holds.
func (d *BadgerDB) generationOf(prefix []byte) (*generation, error) {
	d.generations.mu.Lock()
	defer d.generations.mu.Unlock()
	if g, ok := d.generations.by[string(prefix)]; ok {
		return g, nil
	}
	if err := d.begin(); err != nil {
		return nil, err
	}
	defer d.end()
	f := newKeyFilter()
	err := d.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			f.add(it.Item().Key()[len(prefix):])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the keys it holds: %w", err)
	}
	if d.generations.by == nil {
		d.generations.by = map[string]*generation{}
	}
	g := &generation{known: f}
	d.generations.by[string(prefix)] = g
	return g, nil
}

// freshGeneration returns the shared state of a new, empty generation under prefix, and
// forgets that of the identity's older generations (under family).
func (d *BadgerDB) freshGeneration(family, prefix []byte) *generation {
	d.generations.mu.Lock()
	defer d.generations.mu.Unlock()
	if d.generations.by == nil {
		d.generations.by = map[string]*generation{}
	}
	for p := range d.generations.by {
		if bytes.HasPrefix([]byte(p), family) && len(p) == len(prefix) {
			delete(d.generations.by, p)
		}
	}
	g := &generation{known: newKeyFilter()}
	d.generations.by[string(prefix)] = g
	return g
}
