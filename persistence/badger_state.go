package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// kindValue marks keyed state values: identity, NUL, 'v', the generation (8 bytes, big
// endian), then the state's own key bytes. kindGeneration holds an identity's current
// generation (frame(8 bytes)).
const (
	kindValue      byte = 'v'
	kindGeneration byte = 'g'
)

// KeyedValues is the keyed state of one identity (a key group of a stage) in a Badger
// database: values by key, under the identity's prefix, so the state can be far larger than
// memory and a key group's state moves or restores on its own. Values are framed (version,
// length, CRC-32C) like every other stored value. The state has generations: a restore
// starts a fresh, empty one (FreshKeyedValues) and the old ones are deleted in the
// background, so a recovery does not wait for the deletes.
//
// Reads and writes are built for state far larger than memory:
//   - A Bloom filter of the keys the generation holds (built from the keys when it is first
//     opened in a process, kept up to date by PutBatch) answers most lookups of a key that
//     is not there without reading Badger: a new key costs no lookup. A false positive costs
//     one lookup; there are no false negatives, as long as the identity's state is written
//     through this package (every KeyedValues of a generation shares its filter).
//   - GetBatch looks keys up in one read transaction.
//   - PutBatch does not wait for the disk: its writes go into one write batch shared by every
//     KeyedValues of the database (the key groups of a node), which Badger commits as it
//     fills, in the background. Until the batch is flushed (every maxPendingWrites writes,
//     or by Flush, Scan, Sync, Close), the generation also holds its writes by key in
//     memory, and reads find them there: reads always see what was written, without
//     waiting for the disk.
type KeyedValues struct {
	d      *BadgerDB
	prefix []byte
	gen    *generation
}

// generation is what every KeyedValues of one generation of keyed state shares in a
// process.
type generation struct {
	// known holds the keys the generation holds.
	known *keyFilter
	// pending holds the generation's writes in the shared batch since it was last flushed,
	// framed, by key (nil: a delete); lost is why they were lost, when the batch failed.
	// d.writes.mu guards both.
	pending map[string][]byte
	lost    error
}

// KeyedValues returns identity's keyed state: its current generation.
func (d *BadgerDB) KeyedValues(identity string) (*KeyedValues, error) {
	gen, err := d.generation(identity)
	if err != nil {
		return nil, err
	}
	prefix := generationPrefix(identity, gen)
	g, err := d.generationOf(prefix)
	if err != nil {
		return nil, fmt.Errorf("state %q: %w", identity, err)
	}
	return &KeyedValues{d: d, prefix: prefix, gen: g}, nil
}

// FreshKeyedValues starts a new, empty generation of identity's keyed state and returns it.
// The older generations are deleted in the background; Close stops that, and the next
// FreshKeyedValues of the identity finishes it.
func (d *BadgerDB) FreshKeyedValues(identity string) (*KeyedValues, error) {
	if err := d.begin(); err != nil {
		return nil, err
	}
	defer d.end()
	gen, err := d.generation(identity)
	if err != nil {
		return nil, err
	}
	gen++
	err = d.db.Update(func(txn *badger.Txn) error {
		return txn.Set(kindPrefix(identity, kindGeneration), appendFrame(nil, binary.BigEndian.AppendUint64(nil, gen)))
	})
	if err != nil {
		return nil, fmt.Errorf("new generation of state %q: %w", identity, err)
	}
	prefix := generationPrefix(identity, gen)
	d.cleaner.add(kindPrefix(identity, kindValue), prefix)
	return &KeyedValues{d: d, prefix: prefix, gen: d.freshGeneration(kindPrefix(identity, kindValue), prefix)}, nil
}

func (d *BadgerDB) generation(identity string) (uint64, error) {
	if err := d.begin(); err != nil {
		return 0, err
	}
	defer d.end()
	var gen uint64
	err := d.db.View(func(txn *badger.Txn) error {
		var err error
		gen, err = d.txnUint64(txn, kindPrefix(identity, kindGeneration), "generation of state "+strconv.Quote(identity))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("state %q: read its generation: %w", identity, err)
	}
	return gen, nil
}

func generationPrefix(identity string, gen uint64) []byte {
	return binary.BigEndian.AppendUint64(kindPrefix(identity, kindValue), gen)
}

func (kv *KeyedValues) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(kv.prefix)+len(k)), kv.prefix...), k...)
}

// Get returns the value of key, and whether there is one. A value that fails its checks is
// a *CorruptError.
func (kv *KeyedValues) Get(key []byte) ([]byte, bool, error) {
	var out []byte
	var found bool
	err := kv.GetBatch([][]byte{key}, func(_ int, v []byte) error {
		out, found = append([]byte(nil), v...), true
		return nil
	})
	return out, found, err
}

// GetBatch looks keys up in one read transaction and calls found with the index and value
// of each key that has one, in order, until found returns an error, which GetBatch returns.
// The value is valid only during the call. Keys the filter knows are not there cost no
// read, and neither do keys written since the shared batch was last flushed. A value that
// fails its checks is a *CorruptError.
func (kv *KeyedValues) GetBatch(keys [][]byte, found func(i int, value []byte) error) error {
	maybe := make([]int, 0, len(keys))
	for i, k := range keys {
		if kv.gen.known.mayContain(k) {
			maybe = append(maybe, i)
		}
	}
	if len(maybe) == 0 {
		kv.gen.known.counted(0, len(keys))
		return nil
	}
	// Keys with a write not yet flushed are answered from memory; the others' every write
	// is committed, since a flush commits before it forgets.
	stored := maybe[:0]
	var framed [][]byte // the pending values of maybe's keys, in order
	var at []int
	w := &kv.d.writes
	w.mu.Lock()
	if err := kv.gen.lost; err != nil {
		w.mu.Unlock()
		return fmt.Errorf("get state: %w", err)
	}
	for _, i := range maybe {
		if v, ok := kv.gen.pending[string(keys[i])]; ok {
			if v != nil {
				framed, at = append(framed, v), append(at, i)
			}
			continue
		}
		stored = append(stored, i)
	}
	w.mu.Unlock()
	kv.gen.known.counted(len(stored), len(keys)-len(stored))
	decode := func(i int, v []byte) error {
		payload, err := decodeFrame(v)
		if err != nil {
			return &CorruptError{Where: fmt.Sprintf("badger %s: state %q/%x", kv.d.dir, kv.prefix, keys[i]), Reason: err.Error()}
		}
		return found(i, payload)
	}
	// found is called in key order: pending values and stored ones are merged by index.
	next := 0
	pendingUpTo := func(i int) error {
		for ; next < len(at) && at[next] < i; next++ {
			if err := decode(at[next], framed[next]); err != nil {
				return err
			}
		}
		return nil
	}
	if len(stored) > 0 {
		if err := kv.d.begin(); err != nil {
			return err
		}
		defer kv.d.end()
		err := kv.d.db.View(func(txn *badger.Txn) error {
			for _, i := range stored {
				if err := pendingUpTo(i); err != nil {
					return err
				}
				item, err := txn.Get(kv.key(keys[i]))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue // a false positive of the filter, or deleted
				}
				if err != nil {
					return err
				}
				if err := item.Value(func(v []byte) error { return decode(i, v) }); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("get state: %w", err)
		}
	}
	if err := pendingUpTo(len(keys)); err != nil {
		return fmt.Errorf("get state: %w", err)
	}
	return nil
}

// maxPendingWrites is how many writes the shared batch takes before PutBatch flushes it (and
// the generations forget their pending writes): it bounds that memory, about 150 bytes a
// write for 100-byte values.
const maxPendingWrites = 1 << 16

// PutBatch writes values[i] under keys[i] (nil value: delete) into the database's shared
// write batch, which Badger commits in the background as it fills; reads see the writes at
// once, and Flush waits until they are committed. The slices may be reused once it returns.
func (kv *KeyedValues) PutBatch(keys, values [][]byte) error {
	if len(keys) != len(values) {
		return fmt.Errorf("put state: %d keys and %d values", len(keys), len(values))
	}
	for i, k := range keys {
		// What Badger would refuse is refused before anything goes into the shared batch,
		// which one refused write would otherwise spoil for every state writing into it.
		if n := len(kv.prefix) + len(k); n > maxStateKey {
			return fmt.Errorf("put state: key %d is %d bytes with its prefix, more than Badger's %d", i, n, maxStateKey)
		}
		if n := int64(len(values[i]) + frameHeaderSize); n >= kv.d.maxValue {
			return fmt.Errorf("put state: the value of key %d is %d bytes, more than the database's value log file (%d)", i, n, kv.d.maxValue)
		}
	}
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
	w := &kv.d.writes
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := kv.gen.lost; err != nil {
		return fmt.Errorf("put state: %w", err)
	}
	if w.batch == nil {
		w.batch = kv.d.db.NewWriteBatch()
	}
	if kv.gen.pending == nil {
		kv.gen.pending = make(map[string][]byte, len(keys))
		w.gens = append(w.gens, kv.gen)
	}
	// Badger keeps the keys and values until it has committed them: they are cut from one
	// allocation rather than two each.
	size := 0
	for i, k := range keys {
		size += len(kv.prefix) + len(k)
		if values[i] != nil {
			size += frameHeaderSize + len(values[i])
		}
	}
	slab := make([]byte, 0, size)
	for i, k := range keys {
		start := len(slab)
		slab = append(append(slab, kv.prefix...), k...)
		key := slab[start:len(slab):len(slab)]
		var value []byte
		var err error
		if values[i] == nil {
			err = w.batch.Delete(key)
		} else {
			start = len(slab)
			slab = appendFrame(slab, values[i])
			value = slab[start:len(slab):len(slab)]
			err = w.batch.Set(key, value)
			kv.gen.known.add(k)
		}
		if err != nil {
			// The batch is unusable: what the other states wrote into it since the last
			// flush is lost with it, and each of them is told on its next call.
			w.batch.Cancel()
			w.fail(err)
			return fmt.Errorf("put state: %w", err)
		}
		kv.gen.pending[string(k)] = value
	}
	w.count += len(keys)
	if w.count >= maxPendingWrites {
		if err := w.flushLocked(); err != nil {
			return fmt.Errorf("put state: %w", err)
		}
	}
	return nil
}

// Flush waits until every write of this state's PutBatch calls (and of any other state of
// the database written since) is committed to Badger, and returns the first error of those
// commits.
func (kv *KeyedValues) Flush() error {
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
	if err := kv.commitWrites(); err != nil {
		return fmt.Errorf("flush state: %w", err)
	}
	return nil
}

// commitWrites flushes the shared write batch if this state has writes in it. The caller
// holds begin.
func (kv *KeyedValues) commitWrites() error {
	w := &kv.d.writes
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := kv.gen.lost; err != nil {
		return err
	}
	if kv.gen.pending == nil {
		return nil
	}
	return w.flushLocked()
}

// maxStateKey is the longest key Badger takes (its maxKeySize).
const maxStateKey = 65000

// stateWrites is the write batch that every KeyedValues of a database writes into, so that
// the key groups of a node share one stream of commits instead of one batch each.
type stateWrites struct {
	mu    sync.Mutex
	batch *badger.WriteBatch // nil: nothing written since the last flush
	// gens are the generations with writes in batch, count how many writes it took.
	gens  []*generation
	count int
}

// flushLocked commits the batch, waits for it, and lets the generations forget their
// pending writes; the caller holds mu.
func (w *stateWrites) flushLocked() error {
	if w.batch == nil {
		return nil
	}
	b := w.batch
	if err := b.Flush(); err != nil {
		b.Cancel() // waits for the commits still running
		w.fail(err)
		return fmt.Errorf("writes of keyed state lost: %w", err)
	}
	w.forget()
	return nil
}

// fail drops the batch for err: the generations with writes in it get err from then on.
// The caller holds mu.
func (w *stateWrites) fail(err error) {
	for _, g := range w.gens {
		g.lost = fmt.Errorf("writes of keyed state lost: %w", err)
	}
	w.forget()
}

func (w *stateWrites) forget() {
	for i, g := range w.gens {
		g.pending = nil
		w.gens[i] = nil
	}
	w.gens, w.count, w.batch = w.gens[:0], 0, nil
}

// commit commits what every KeyedValues of the database wrote (Sync and Close call it).
func (w *stateWrites) commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// Scan calls f with every key and value of the identity's state, in key order, until f
// returns an error, which Scan returns. The slices are valid only during the call. It reads
// one consistent version of the state: writes that land while it runs are not seen.
func (kv *KeyedValues) Scan(f func(key, value []byte) error) error {
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
	if err := kv.commitWrites(); err != nil {
		return fmt.Errorf("scan state: %w", err)
	}
	return kv.d.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = kv.prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()[len(kv.prefix):]
			err := item.Value(func(v []byte) error {
				payload, err := decodeFrame(v)
				if err != nil {
					return &CorruptError{Where: fmt.Sprintf("badger %s: state %q/%x", kv.d.dir, kv.prefix, key), Reason: err.Error()}
				}
				return f(key, payload)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// clearBatch is how many deletes go into one write batch when old state is deleted.
const clearBatch = 4096

// stateCleaner deletes old generations of keyed state, one range at a time, on a goroutine
// of the database's (started on first use, stopped by Close).
type stateCleaner struct {
	d      *BadgerDB
	mu     sync.Mutex
	ranges [][2][]byte // [from, to)
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

func (c *stateCleaner) add(from, to []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return // the next fresh generation deletes it
	}
	c.ranges = append(c.ranges, [2][]byte{from, to})
	if c.wake == nil {
		c.wake, c.stop, c.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go c.loop()
	}
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (c *stateCleaner) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			if len(c.ranges) == 0 {
				c.mu.Unlock()
				break
			}
			r := c.ranges[0]
			c.ranges = c.ranges[1:]
			c.mu.Unlock()
			if err := c.d.deleteRange(r[0], r[1], c.stop); err != nil && !errors.Is(err, ErrClosed) {
				c.d.logger.Warn("delete old keyed state", "dir", c.d.dir, "err", err)
			}
		}
	}
}

// close stops the cleaner and waits for it; what it had not deleted stays until the next
// fresh generation of its identity.
func (c *stateCleaner) close() {
	c.mu.Lock()
	c.closed = true
	started := c.wake != nil
	c.mu.Unlock()
	if started {
		close(c.stop)
		<-c.done
	}
}

// deleteRange deletes the keys in [from, to), in write batches, until done or stop is
// closed.
func (d *BadgerDB) deleteRange(from, to []byte, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := d.begin(); err != nil {
			return err
		}
		var keys [][]byte
		err := d.db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Seek(from); it.Valid() && len(keys) < clearBatch; it.Next() {
				k := it.Item().Key()
				if bytes.Compare(k, to) >= 0 {
					break
				}
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err == nil && len(keys) > 0 {
			wb := d.db.NewWriteBatch()
			for _, k := range keys {
				if err = wb.Delete(k); err != nil {
					break
				}
			}
			if err == nil {
				err = wb.Flush()
			} else {
				wb.Cancel()
			}
		}
		d.end()
		if err != nil {
			return fmt.Errorf("delete %q…: %w", from, err)
		}
		if len(keys) < clearBatch {
			return nil
		}
	}
}
