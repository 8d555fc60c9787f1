package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

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
//     fills, in the background. A read of an identity with writes not yet committed commits
//     them first (Flush), so reads always see what was written.
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
	// wrote is the epoch of the shared write batch (d.writes) that last took a write of
	// the generation: the generation has writes waiting while that batch is not committed.
	wrote atomic.Uint64
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
// read. A value that fails its checks is a *CorruptError.
func (kv *KeyedValues) GetBatch(keys [][]byte, found func(i int, value []byte) error) error {
	maybe := make([]int, 0, len(keys))
	for i, k := range keys {
		if kv.gen.known.mayContain(k) {
			maybe = append(maybe, i)
		}
	}
	kv.gen.known.counted(len(maybe), len(keys)-len(maybe))
	if len(maybe) == 0 {
		return nil
	}
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
	if err := kv.commitWrites(); err != nil {
		return fmt.Errorf("get state: %w", err)
	}
	err := kv.d.db.View(func(txn *badger.Txn) error {
		for _, i := range maybe {
			item, err := txn.Get(kv.key(keys[i]))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue // a false positive of the filter, or deleted
			}
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				payload, err := decodeFrame(v)
				if err != nil {
					return &CorruptError{Where: fmt.Sprintf("badger %s: state %q/%x", kv.d.dir, kv.prefix, keys[i]), Reason: err.Error()}
				}
				return found(i, payload)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("get state: %w", err)
	}
	return nil
}

// PutBatch writes values[i] under keys[i] (nil value: delete) into the database's shared
// write batch, which Badger commits in the background as it fills; Flush, or any read of
// this state, waits until they are committed. The slices may be reused once it returns.
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
	if err := w.failedFor(kv); err != nil {
		return fmt.Errorf("put state: %w", err)
	}
	if w.batch == nil {
		w.batch = kv.d.db.NewWriteBatch()
	}
	kv.gen.wrote.Store(w.epoch)
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
		var err error
		if values[i] == nil {
			err = w.batch.Delete(key)
		} else {
			start = len(slab)
			slab = appendFrame(slab, values[i])
			err = w.batch.Set(key, slab[start:len(slab):len(slab)])
			kv.gen.known.add(k) // known before it is committed: a read commits it first
		}
		if err != nil {
			// The batch is unusable: what the other states wrote into it since the last
			// commit is lost with it, and each of them is told on its next call.
			w.batch.Cancel()
			w.fail(err)
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

// commitWrites commits the shared write batch if this state wrote into it since it was last
// committed. The caller holds begin.
func (kv *KeyedValues) commitWrites() error {
	w := &kv.d.writes
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.failedFor(kv); err != nil {
		return err
	}
	if w.batch == nil || kv.gen.wrote.Load() != w.epoch {
		return nil
	}
	return w.commitLocked()
}

// maxStateKey is the longest key Badger takes (its maxKeySize).
const maxStateKey = 65000

// stateWrites is the write batch that every KeyedValues of a database writes into, so that
// the key groups of a node share one stream of commits instead of one batch each.
type stateWrites struct {
	mu    sync.Mutex
	batch *badger.WriteBatch // nil: nothing written since the last commit
	// epoch counts batches, from 1: a state whose last write was in an earlier one has
	// nothing waiting.
	epoch uint64
	// failure is why the batch of failedEpoch was lost: the states that wrote into it get
	// it from then on.
	failure     error
	failedEpoch uint64
}

// commitLocked commits the batch and waits for it; the caller holds mu.
func (w *stateWrites) commitLocked() error {
	b := w.batch
	if err := b.Flush(); err != nil {
		b.Cancel() // waits for the commits still running
		w.fail(err)
		return w.failure
	}
	w.batch = nil
	w.epoch++
	return nil
}

// fail drops the batch of this epoch for err; the caller holds mu.
func (w *stateWrites) fail(err error) {
	w.failure = fmt.Errorf("writes of keyed state lost: %w", err)
	w.failedEpoch = w.epoch
	w.batch = nil
	w.epoch++
}

// failedFor returns the failure that lost some of kv's writes, if one did; the caller
// holds mu.
func (w *stateWrites) failedFor(kv *KeyedValues) error {
	if w.failure != nil && kv.gen.wrote.Load() == w.failedEpoch {
		return w.failure
	}
	return nil
}

// commit commits what every KeyedValues of the database wrote (Sync and Close call it).
func (w *stateWrites) commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.batch == nil {
		return nil
	}
	return w.commitLocked()
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
