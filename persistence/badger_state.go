package persistence

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// kindValue marks keyed state values: identity, NUL, 'v', then the state's own key bytes.
const kindValue byte = 'v'

// KeyedValues is the keyed state of one identity (a key group of a stage) in a Badger
// database: values by key, under the identity's prefix, so the state can be far larger than
// memory and a key group's state moves or restores on its own. Values are framed (version,
// length, CRC-32C) like every other stored value.
type KeyedValues struct {
	d      *BadgerDB
	prefix []byte
}

// KeyedValues returns identity's keyed state.
func (d *BadgerDB) KeyedValues(identity string) *KeyedValues {
	return &KeyedValues{d: d, prefix: kindPrefix(identity, kindValue)}
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

// clearBatch is how many deletes go into one write batch when a state is cleared.
const clearBatch = 4096

// Clear deletes every value of the identity's state.
func (kv *KeyedValues) Clear() error {
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
	for {
		// Collect a batch of keys first: deleting while a read transaction iterates would
		// make the iterator see its own deletes never, and hold old versions long.
		var keys [][]byte
		err := kv.d.db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix, opts.PrefetchValues = kv.prefix, false
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < clearBatch; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("clear state %q: %w", kv.prefix, err)
		}
		if len(keys) == 0 {
			return nil
		}
		wb := kv.d.db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return fmt.Errorf("clear state %q: %w", kv.prefix, err)
			}
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("clear state %q: %w", kv.prefix, err)
		}
	}
}
