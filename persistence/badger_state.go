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
type KeyedValues struct {
	d      *BadgerDB
	prefix []byte
}

// KeyedValues returns identity's keyed state: its current generation.
func (d *BadgerDB) KeyedValues(identity string) (*KeyedValues, error) {
	gen, err := d.generation(identity)
	if err != nil {
		return nil, err
	}
	return &KeyedValues{d: d, prefix: generationPrefix(identity, gen)}, nil
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
	d.cleaner.add(kindPrefix(identity, kindValue), generationPrefix(identity, gen))
	return &KeyedValues{d: d, prefix: generationPrefix(identity, gen)}, nil
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
	if err := kv.d.begin(); err != nil {
		return nil, false, err
	}
	defer kv.d.end()
	var out []byte
	err := kv.d.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(kv.key(key))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			payload, err := decodeFrame(v)
			if err != nil {
				return &CorruptError{Where: fmt.Sprintf("badger %s: state %q/%x", kv.d.dir, kv.prefix, key), Reason: err.Error()}
			}
			out = append([]byte(nil), payload...)
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get state: %w", err)
	}
	return out, true, nil
}

// PutBatch writes values[i] under keys[i], in one write batch (nil value: delete).
func (kv *KeyedValues) PutBatch(keys, values [][]byte) error {
	if len(keys) != len(values) {
		return fmt.Errorf("put state: %d keys and %d values", len(keys), len(values))
	}
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
	wb := kv.d.db.NewWriteBatch()
	defer wb.Cancel()
	for i, k := range keys {
		var err error
		if values[i] == nil {
			err = wb.Delete(kv.key(k))
		} else {
			err = wb.Set(kv.key(k), appendFrame(nil, values[i]))
		}
		if err != nil {
			return fmt.Errorf("put state: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("put state: %w", err)
	}
	return nil
}

// Scan calls f with every key and value of the identity's state, in key order, until f
// returns an error, which Scan returns. The slices are valid only during the call. It reads
// one consistent version of the state: writes that land while it runs are not seen.
func (kv *KeyedValues) Scan(f func(key, value []byte) error) error {
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
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
