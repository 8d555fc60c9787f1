package persistence

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// ScanRange calls f with the keys and values of the identity's state from key from
// (inclusive; nil: the first) up to key to (exclusive; nil: past the last), in key order —
// bytewise order of the keys as written — until f returns false or an error, which
// ScanRange returns. It seeks to from, so a narrow range reads only what it returns. The
// slices are valid only during the call; it reads one consistent version of the state.
func (kv *KeyedValues) ScanRange(from, to []byte, f func(key, value []byte) (bool, error)) error {
	if err := kv.d.begin(); err != nil {
		return err
	}
	defer kv.d.end()
	if err := kv.commitWrites(); err != nil { // what PutBatch queued is part of the state
		return fmt.Errorf("scan state: %w", err)
	}
	return kv.d.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = kv.prefix
		opts.PrefetchValues = false // f may stop early: read values one by one
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(kv.key(from)); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()[len(kv.prefix):]
			if to != nil && bytes.Compare(key, to) >= 0 {
				return nil
			}
			more := true
			err := item.Value(func(v []byte) error {
				payload, err := decodeFrame(v)
				if err != nil {
					return &CorruptError{Where: fmt.Sprintf("badger %s: state %q/%x", kv.d.dir, kv.prefix, key), Reason: err.Error()}
				}
				more, err = f(key, payload)
				return err
			})
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}
