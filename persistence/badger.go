package persistence

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// SyncPolicy says when Badger's writes are forced to stable storage (fsync). In every
// policy a write that returned is in the operating system's page cache, so it survives the
// process being killed; the policies differ in what a power loss or kernel crash may lose.
type SyncPolicy struct {
	always bool
	every  time.Duration
}

// SyncAlways fsyncs every write before it returns: a power loss loses nothing that was
// acknowledged. Each AppendBatch then costs at least one fsync (Badger commits concurrent
// writers together, so many writers share one), which bounds throughput by the disk's sync
// latency: batch your appends.
var SyncAlways = SyncPolicy{always: true}

// SyncNever leaves write-back to the operating system (and to Close): fastest, and safe
// against process crashes, but a power loss may lose the last tens of seconds of writes.
var SyncNever = SyncPolicy{}

// SyncEvery fsyncs every d from a background goroutine: a power loss loses at most about the
// last d of acknowledged writes, and writers never wait for the disk. d must be positive.
func SyncEvery(d time.Duration) SyncPolicy { return SyncPolicy{every: d} }

func (p SyncPolicy) String() string {
	switch {
	case p.always:
		return "always"
	case p.every > 0:
		return "every " + p.every.String()
	default:
		return "never"
	}
}

// Option configures OpenBadger.
type Option interface{ apply(*badgerConfig) }

type optionFunc func(*badgerConfig)

func (f optionFunc) apply(c *badgerConfig) { f(c) }

type badgerConfig struct {
	sync   SyncPolicy
	logger *slog.Logger
	tune   func(badger.Options) badger.Options
}

// WithSync sets the sync policy. Default: SyncEvery(100 * time.Millisecond), which keeps
// writers off the disk's latency and bounds what a power loss can take. A checkpoint must
// not be acknowledged before its journal writes are durable: call (*BadgerDB).Sync first,
// unless the policy is SyncAlways.
func WithSync(p SyncPolicy) Option {
	return optionFunc(func(c *badgerConfig) { c.sync = p })
}

// WithLogger sets where Badger's warnings and errors go (its info and debug messages are
// dropped), together with the sync loop's errors. Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *badgerConfig) { c.logger = l })
}

// WithBadgerOptions lets f adjust Badger's options (memtable and cache sizes, compression).
// Dir, ValueDir, SyncWrites and Logger are set afterwards by this package.
func WithBadgerOptions(f func(badger.Options) badger.Options) Option {
	return optionFunc(func(c *badgerConfig) { c.tune = f })
}

// LargeStateOptions adjusts Badger's options for keyed state far larger than memory (a key
// group's values, written back in batches and read rarely): pass it to WithBadgerOptions.
// What each choice trades (docs/decisions-badgerspeed.md has the measurements):
//
//   - Values stay in the LSM tree (Badger's default value threshold of 1 MiB): state is
//     rewritten on every update, and values in the value log would leave a dead copy there
//     each time, which only value-log GC (which nothing here runs) would reclaim.
//   - 8 MiB memtables, two of them: a write-back batch fills a fraction of one. Badger's
//     memtables and the buffer that flushes one to a level-0 table (twice its size) live
//     in the Go heap; 16 MiB memtables put the heap past 256 MiB at 2 M keys.
//   - 2 MiB tables on every level (TableSizeMultiplier 1; Badger's default doubles them per
//     level), a 16 MiB base level, 4 level-0 tables before compaction (8 before writes
//     stall), 2 compactors: each compaction builds its tables in buffers of twice the table
//     size, in the Go heap, and with doubling sizes the builders of the deep levels of a
//     20 M-key state (16–32 MiB tables) made most of the heap's peak. More, smaller tables
//     cost a little more index memory (bounded by the index cache) and nothing per key.
//   - No block cache, a 16 MiB index cache: reads are rare (the key filter of each
//     generation answers most lookups of new keys, writes not yet flushed are read from
//     memory), and compactions, which read every block once, churned a 16 MiB block cache
//     with a hit ratio of 0 (and Badger warned about it once a minute). The index cache
//     keeps tables' indexes and Bloom filters from all being held in memory.
//   - No compression: compression buffers were a third of the heap at its peak, and the
//     values of keyed state (counts, sums, encoded accumulators) compress poorly anyway.
func LargeStateOptions(o badger.Options) badger.Options {
	o.TableSizeMultiplier = 1 // it has no With method
	return o.WithMemTableSize(8 << 20).WithNumMemtables(2).
		WithBlockCacheSize(0).WithIndexCacheSize(16 << 20).
		WithNumLevelZeroTables(4).WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).WithBaseTableSize(2 << 20).
		WithBaseLevelSize(16 << 20).
		WithCompression(options.None)
}

func (c *badgerConfig) validate() error {
	if c.sync.every < 0 {
		return fmt.Errorf("sync every %v: must be positive", c.sync.every)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return nil
}

// BadgerDB is one Badger database holding journals and snapshots. Get its Journal and
// SnapshotStore from Journal and Snapshots; they share the database and its sync policy.
//
// It owns the database and, with SyncEvery, one goroutine; Close stops both.
type BadgerDB struct {
	db     *badger.DB
	dir    string
	logger *slog.Logger
	cfg    badgerConfig
	// maxValue is the size of Badger's value log files, which no value may reach.
	maxValue int64

	cancel   context.CancelFunc
	syncDone chan struct{}

	// closeMu guards closed; an operation holds it (read) while it registers in inflight.
	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// cleaner deletes old generations of keyed state in the background.
	cleaner stateCleaner
	// writes is the write batch of every KeyedValues; generations what the KeyedValues of
	// each generation of keyed state share (its key filter, badger_filter.go).
	writes      stateWrites
	generations stateGenerations

	journal   *BadgerJournal
	snapshots *BadgerSnapshots
}

// OpenBadger opens (creating if needed) the Badger database in dir.
func OpenBadger(dir string, opts ...Option) (*BadgerDB, error) {
	cfg := badgerConfig{sync: SyncEvery(100 * time.Millisecond)}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open badger %s: %w", dir, err)
	}
	bo := badger.DefaultOptions(dir)
	if cfg.tune != nil {
		bo = cfg.tune(bo)
	}
	bo = bo.WithDir(dir).WithValueDir(dir).
		WithSyncWrites(cfg.sync.always).
		WithLogger(slogBadgerLogger{cfg.logger.With("component", "badger", "dir", dir)})
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open badger %s: %w", dir, err)
	}
	d := &BadgerDB{db: db, dir: dir, logger: cfg.logger, cfg: cfg, maxValue: bo.ValueLogFileSize}
	d.cleaner.d = d
	d.journal = &BadgerJournal{d: d, highest: make(map[string]uint64)}
	d.snapshots = &BadgerSnapshots{d: d}
	if cfg.sync.every > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel = cancel
		d.syncDone = make(chan struct{})
		go d.syncLoop(ctx, cfg.sync.every)
	}
	return d, nil
}

// Journal returns the database's journal.
func (d *BadgerDB) Journal() *BadgerJournal { return d.journal }

// Snapshots returns the database's snapshot store.
func (d *BadgerDB) Snapshots() *BadgerSnapshots { return d.snapshots }

// Sync forces every write made so far to stable storage.
func (d *BadgerDB) Sync() error {
	if err := d.begin(); err != nil {
		return err
	}
	defer d.end()
	if err := d.writes.commit(); err != nil {
		return fmt.Errorf("sync badger %s: %w", d.dir, err)
	}
	if err := d.db.Sync(); err != nil {
		return fmt.Errorf("sync badger %s: %w", d.dir, err)
	}
	return nil
}

// Close waits for operations in progress, stops the sync goroutine and closes the database
// (which flushes it to disk). Later operations return ErrClosed. It is safe to call twice.
func (d *BadgerDB) Close() error {
	d.closeOnce.Do(func() {
		d.closeMu.Lock()
		d.closed = true
		d.closeMu.Unlock()
		if d.cancel != nil {
			d.cancel()
			<-d.syncDone
		}
		d.cleaner.close()
		d.inflight.Wait()
		// Writes of keyed state still in the shared batch are committed before the close.
		werr := d.writes.commit()
		if err := d.db.Close(); err != nil {
			d.closeErr = fmt.Errorf("close badger %s: %w", d.dir, err)
		} else if werr != nil {
			d.closeErr = fmt.Errorf("close badger %s: %w", d.dir, werr)
		}
	})
	return d.closeErr
}

func (d *BadgerDB) syncLoop(ctx context.Context, every time.Duration) {
	defer close(d.syncDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.db.Sync(); err != nil {
				d.logger.Warn("badger sync failed", "dir", d.dir, "err", err)
			}
		}
	}
}

// txnUint64 reads the framed 8-byte big-endian number under key in txn: 0 when there is
// none, a *CorruptError naming what (and the database) when it fails its checks.
func (d *BadgerDB) txnUint64(txn *badger.Txn, key []byte, what string) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		p, err := decodeFrame(v)
		if err == nil && len(p) != 8 {
			err = fmt.Errorf("payload is %d bytes, want an 8-byte number", len(p))
		}
		if err != nil {
			return &CorruptError{Where: fmt.Sprintf("%s in badger %s", what, d.dir), Reason: err.Error()}
		}
		n = binary.BigEndian.Uint64(p)
		return nil
	})
	return n, err
}

// begin registers an operation; it fails once Close has started.
func (d *BadgerDB) begin() error {
	d.closeMu.RLock()
	defer d.closeMu.RUnlock()
	if d.closed {
		return fmt.Errorf("badger %s: %w", d.dir, ErrClosed)
	}
	d.inflight.Add(1)
	return nil
}

func (d *BadgerDB) end() { d.inflight.Done() }

// Key layout (see the package doc): identity, NUL, kind, then for events and snapshots the
// sequence number as 8 big-endian bytes.
const (
	kindEvent    byte = 'e' // value: frame(event data)
	kindHighest  byte = 'h' // value: frame(8-byte seq): HighestSeq when events were last deleted
	kindSnapshot byte = 's' // value: frame(snapshot data)
)

// kindPrefix returns identity, NUL, kind.
func kindPrefix(identity string, kind byte) []byte {
	k := make([]byte, 0, len(identity)+10)
	k = append(k, identity...)
	return append(k, 0, kind)
}

// seqKey returns identity, NUL, kind, seq.
func seqKey(identity string, kind byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(kindPrefix(identity, kind), seq)
}

// keySeq returns the sequence number at the end of a key that starts with a prefix of
// length n.
func keySeq(key []byte, n int) (uint64, bool) {
	if len(key) != n+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[n:]), true
}

// seqs returns the sequence numbers of the keys under prefix with seq <= toSeq, in order.
func (d *BadgerDB) seqs(ctx context.Context, prefix []byte, toSeq uint64) ([]uint64, error) {
	var out []uint64
	err := d.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, ok := keySeq(it.Item().Key(), len(prefix))
			if !ok {
				return &CorruptError{Where: fmt.Sprintf("key %q in badger %s", it.Item().Key(), d.dir),
					Reason: fmt.Sprintf("key is %d bytes, want %d (prefix and 8-byte sequence number)", len(it.Item().Key()), len(prefix)+8)}
			}
			if seq > toSeq {
				break
			}
			if len(out)%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			out = append(out, seq)
		}
		return nil
	})
	return out, err
}

// deleteKeys deletes the keys under prefix with fromSeq <= seq <= toSeq, a chunk at a time
// so that deleting a long journal does not hold every key in memory.
func (d *BadgerDB) deleteKeys(ctx context.Context, prefix []byte, fromSeq, toSeq uint64) error {
	const chunk = 10000
	for from := fromSeq; ; {
		var keys [][]byte
		err := d.db.View(func(txn *badger.Txn) error {
			o := badger.DefaultIteratorOptions
			o.PrefetchValues = false
			o.Prefix = prefix
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Seek(binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), from)); it.Valid() && len(keys) < chunk; it.Next() {
				k := it.Item().KeyCopy(nil)
				if seq, ok := keySeq(k, len(prefix)); ok && seq > toSeq {
					break
				}
				keys = append(keys, k)
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		wb := d.db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return err
			}
		}
		if err := wb.Flush(); err != nil {
			return err
		}
		if len(keys) < chunk {
			return nil
		}
		last, ok := keySeq(keys[len(keys)-1], len(prefix))
		if !ok || last == MaxSeq {
			return nil
		}
		from = last + 1
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// slogBadgerLogger passes Badger's warnings and errors to slog and drops the rest.
type slogBadgerLogger struct{ l *slog.Logger }

func (s slogBadgerLogger) Errorf(f string, args ...any) {
	s.l.Error(trimNewline(fmt.Sprintf(f, args...)))
}

func (s slogBadgerLogger) Warningf(f string, args ...any) {
	s.l.Warn(trimNewline(fmt.Sprintf(f, args...)))
}

func (slogBadgerLogger) Infof(string, ...any)  {}
func (slogBadgerLogger) Debugf(string, ...any) {}

func trimNewline(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		return s[:n-1]
	}
	return s
}
