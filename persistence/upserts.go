package persistence

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/eddyflow/eddy/stream"
)

// kindUpsert marks the rows of an UpsertTable: name, NUL, 'u', then the key's codec bytes.
const kindUpsert byte = 'u'

// UpsertTable is a table of keyed results in a Badger database: a stream.UpsertStore for
// jobs (stream.UpsertSink(table) is a sink of KV records) and a table to read for everyone
// else. Rows are framed (version, length, CRC-32C) like every other stored value.
type UpsertTable[K comparable, V any] struct {
	d      *BadgerDB
	prefix []byte
	keys   stream.Codec[K]
	values stream.Codec[V]
}

var _ stream.UpsertStore[string, int] = (*UpsertTable[string, int])(nil)

// NewUpsertTable returns the table name in d, whose keys and values keys and values encode.
func NewUpsertTable[K comparable, V any](d *BadgerDB, name string, keys stream.Codec[K], values stream.Codec[V]) *UpsertTable[K, V] {
	return &UpsertTable[K, V]{d: d, prefix: kindPrefix(name, kindUpsert), keys: keys, values: values}
}

func (t *UpsertTable[K, V]) key(k K) ([]byte, error) {
	b, err := t.keys.Append(append([]byte(nil), t.prefix...), k)
	if err != nil {
		return nil, fmt.Errorf("upsert table %q: key %v: %w", t.prefix, k, err)
	}
	return b, nil
}

// WriteUpserts implements stream.UpsertStore: the batch goes in one write batch, in order.
func (t *UpsertTable[K, V]) WriteUpserts(batch []stream.Upsert[K, V]) error {
	if err := t.d.begin(); err != nil {
		return err
	}
	defer t.d.end()
	wb := t.d.db.NewWriteBatch()
	defer wb.Cancel()
	for _, u := range batch {
		k, err := t.key(u.Key)
		if err != nil {
			return err
		}
		if u.Delete {
			err = wb.Delete(k)
		} else {
			var v []byte
			if v, err = t.values.Append(nil, u.Value); err != nil {
				return fmt.Errorf("upsert table %q: value of %v: %w", t.prefix, u.Key, err)
			}
			err = wb.Set(k, appendFrame(nil, v))
		}
		if err != nil {
			return fmt.Errorf("upsert table %q: %w", t.prefix, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("upsert table %q: %w", t.prefix, err)
	}
	return nil
}

// Get returns key's value, and whether the table has one.
func (t *UpsertTable[K, V]) Get(key K) (V, bool, error) {
	var v V
	k, err := t.key(key)
	if err != nil {
		return v, false, err
	}
	if err := t.d.begin(); err != nil {
		return v, false, err
	}
	defer t.d.end()
	err = t.d.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			v, err = t.decode(b, key)
			return err
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	return v, true, nil
}

func (t *UpsertTable[K, V]) decode(b []byte, key any) (V, error) {
	payload, err := decodeFrame(b)
	if err != nil {
		var zero V
		return zero, &CorruptError{Where: fmt.Sprintf("badger %s: upsert table %q, key %v", t.d.dir, t.prefix, key), Reason: err.Error()}
	}
	v, err := t.values.Decode(payload)
	if err != nil {
		return v, fmt.Errorf("upsert table %q: value of %v: %w", t.prefix, key, err)
	}
	return v, nil
}

// All calls f with every row, in key-byte order, until f returns an error, which All
// returns.
func (t *UpsertTable[K, V]) All(f func(K, V) error) error {
	if err := t.d.begin(); err != nil {
		return err
	}
	defer t.d.end()
	return t.d.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = t.prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k, err := t.keys.Decode(item.Key()[len(t.prefix):])
			if err != nil {
				return fmt.Errorf("upsert table %q: key %x: %w", t.prefix, item.Key(), err)
			}
			var v V
			if err := item.Value(func(b []byte) error { v, err = t.decode(b, k); return err }); err != nil {
				return err
			}
			if err := f(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close implements stream.UpsertStore; the database stays open (its owner closes it).
func (t *UpsertTable[K, V]) Close() error { return nil }
