package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/stream"
)

// opTimeout bounds one call to the brokers (a flush, a transaction's end, a marker).
const opTimeout = 30 * time.Second

// ExactlyOnceSink writes to a topic in Kafka transactions tied to checkpoints; see
// ExactlyOnce.
type ExactlyOnceSink[T any] struct {
	cfg    Config
	topic  string
	encode Encoder[T]
	prefix string
	opts   sinkOpts

	// mu guards recovered, closed, admin and writers.
	mu        sync.Mutex
	recovered bool
	closed    bool
	admin     *kgo.Client
	writers   map[int]*txWriter

	failed                           atomic.Pointer[error]
	written, committed, transactions atomic.Int64
	lost                             atomic.Int64
}

var (
	_ stream.TwoPhaseSink[int] = (*ExactlyOnceSink[int])(nil)
)

// txWriter is one writer instance: its transactional producer and its open transaction.
type txWriter struct {
	instance int
	txnID    string

	// mu guards the fields below: the instance's goroutine writes and pre-commits, Commit and
	// Close may come from others.
	mu     sync.Mutex
	client *kgo.Client
	// inTxn: a Kafka transaction is open; records: how many records it holds.
	inTxn   bool
	records int64
	// upTo is the checkpoint the open transaction was pre-committed at (0: not yet). Records
	// written after that barrier wait in held until Commit ends the transaction.
	upTo int64
	held []*kgo.Record
	// epoch is the producer epoch the pre-committed transaction was noted with.
	epoch int16
	lastN int64
	// broken is the error that broke the writer; it refuses everything after it.
	broken error
	closed bool
	// produceErr is the first failed produce of the open transaction.
	produceErr atomic.Pointer[error]
}

// ExactlyOnce writes each record to topic (or the topic its Encoder names) exactly once, as
// Flink's KafkaSink with EXACTLY_ONCE does. It is a stream.TwoPhaseSink:
//
//   - Each writer instance i has one transactional producer whose transactional id is
//     "<transactionalIDPrefix>-<i>": stable across runs, so that a restarted run fences
//     the producer of a dead one. The prefix must be unique to this sink of this job.
//   - The records instance i writes between the barriers of checkpoints m and n go into one
//     Kafka transaction. PreCommit(i, n) flushes it (every record acknowledged) and notes
//     in Kafka that it belongs to checkpoint n; Commit(n) commits it when n is complete.
//     Records that arrive between the barrier and the commit are held in memory and go
//     into the next transaction (one producer has one transaction open at a time).
//   - The note is an offset commit of the group named like the transactional id, for
//     partition 0 of topic, at offset n, whose metadata holds the producer id and epoch.
//     Recover reads it: a transaction a dead run left open is committed when its
//     checkpoint completed and aborted otherwise, so read_committed readers see each
//     record once across crashes and are not held back by the dead run.
//
// A failure (a produce, a flush, a commit) breaks the writer: its next pre-commits fail so
// no later checkpoint completes, and Err reports it. Stop the job and start it again then:
// recovery commits or aborts what was left open and the job replays from its last complete
// checkpoint. Committed output cannot be taken back: a recovery that falls back to an
// older checkpoint than the last one committed (a corrupt newest checkpoint) writes the
// records after it again.
func ExactlyOnce[T any](cfg Config, topic string, encode Encoder[T], transactionalIDPrefix string, opts ...SinkOption) (*ExactlyOnceSink[T], error) {
	if err := checkSink(cfg, topic, encode); err != nil {
		return nil, err
	}
	if transactionalIDPrefix == "" {
		return nil, errors.New("kafka exactly-once sink: empty transactional id prefix")
	}
	s := &ExactlyOnceSink[T]{cfg: cfg, topic: topic, encode: encode, prefix: transactionalIDPrefix, writers: map[int]*txWriter{}}
	s.opts.txnTimeout = time.Minute
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.txnTimeout <= 0 {
		return nil, fmt.Errorf("kafka exactly-once sink: transaction timeout %v", s.opts.txnTimeout)
	}
	return s, nil
}

func (s *ExactlyOnceSink[T]) txnID(instance int) string {
	return s.prefix + "-" + strconv.Itoa(instance)
}

// instanceOf parses a transactional id of this sink back to its instance.
func (s *ExactlyOnceSink[T]) instanceOf(txnID string) (int, bool) {
	rest, ok := strings.CutPrefix(txnID, s.prefix+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

// Err returns the failure that broke a writer, if one did: the job should be stopped and
// started again (see ExactlyOnce).
func (s *ExactlyOnceSink[T]) Err() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *ExactlyOnceSink[T]) fail(err error) error {
	s.failed.CompareAndSwap(nil, &err)
	return err
}

// Stats reports how many records were written and committed, and how many transactions.
func (s *ExactlyOnceSink[T]) Stats() SinkStats {
	return SinkStats{Written: s.written.Load(), Committed: s.committed.Load(), Transactions: s.transactions.Load(), LostTransactions: s.lost.Load()}
}

// marker is what PreCommit and Commit note in Kafka about an instance's transaction.
type marker struct {
	checkpoint int64
	done       bool // committed; else pre-committed
	pid        int64
	epoch      int16
}

const markerPrefix = "eddy-kafka-sink v1 "

func (m marker) metadata() string {
	if m.done {
		return markerPrefix + "done"
	}
	return fmt.Sprintf("%spre %d %d", markerPrefix, m.pid, m.epoch)
}

func parseMarker(at int64, meta string) (marker, error) {
	m := marker{checkpoint: at}
	rest, ok := strings.CutPrefix(meta, markerPrefix)
	if !ok || at < 0 {
		return m, fmt.Errorf("not a marker of this sink: offset %d, metadata %q", at, meta)
	}
	if rest == "done" {
		m.done = true
		return m, nil
	}
	var epoch int64
	if _, err := fmt.Sscanf(rest, "pre %d %d", &m.pid, &epoch); err != nil || epoch < 0 || epoch > 1<<15-1 {
		return m, fmt.Errorf("marker metadata %q: %v", meta, err)
	}
	m.epoch = int16(epoch)
	return m, nil
}

func (s *ExactlyOnceSink[T]) writeMarker(ctx context.Context, adm *kadm.Client, txnID string, m marker) error {
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: s.topic, Partition: 0, At: m.checkpoint, LeaderEpoch: -1, Metadata: m.metadata()})
	resps, err := adm.CommitOffsets(ctx, txnID, os)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return fmt.Errorf("note transaction of %s at checkpoint %d: %w", txnID, m.checkpoint, err)
	}
	return nil
}

func (s *ExactlyOnceSink[T]) readMarker(ctx context.Context, adm *kadm.Client, txnID string) (marker, bool, error) {
	resps, err := adm.FetchOffsets(ctx, txnID)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return marker{}, false, nil // no pre-commit yet
	}
	if err != nil {
		return marker{}, false, fmt.Errorf("read the transaction note of %s: %w", txnID, err)
	}
	o, ok := resps.Lookup(s.topic, 0)
	if !ok || o.Err != nil || o.At < 0 {
		return marker{}, false, nil
	}
	m, err := parseMarker(o.At, o.Metadata)
	if err != nil {
		return marker{}, false, fmt.Errorf("transaction note of %s: %w", txnID, err)
	}
	return m, true, nil
}

// Recover finishes what dead runs left open for the instances owns accepts: a transaction
// pre-committed at a checkpoint ≤ lastComplete is committed, any other open transaction of
// the sink's transactional ids is aborted.
func (s *ExactlyOnceSink[T]) Recover(lastComplete int64, owns func(instance int) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("kafka exactly-once sink %s: recover after Close", s.topic)
	case len(s.writers) > 0:
		return fmt.Errorf("kafka exactly-once sink %s: recover after writes began", s.topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	if s.admin == nil {
		cl, err := kgo.NewClient(s.cfg.clientOpts()...)
		if err != nil {
			return fmt.Errorf("kafka exactly-once sink %s: recover: new client: %w", s.topic, err)
		}
		s.admin = cl
	}
	adm := kadm.NewClient(s.admin)
	if s.opts.createParts > 0 {
		if err := createTopics(ctx, adm, s.opts.createParts, []string{s.topic}); err != nil {
			return fmt.Errorf("kafka exactly-once sink: %w", err)
		}
	}
	listed, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("kafka exactly-once sink %s: recover: list transactions: %w", s.topic, err)
	}
	ids := slices.Sorted(maps.Keys(listed))
	for _, id := range ids {
		i, ok := s.instanceOf(id)
		if !ok || !owns(i) {
			continue
		}
		if err := s.recoverTxn(ctx, adm, id, lastComplete); err != nil {
			return fmt.Errorf("kafka exactly-once sink %s: recover to checkpoint %d: %w", s.topic, lastComplete, err)
		}
	}
	s.recovered = true
	return nil
}

func (s *ExactlyOnceSink[T]) recoverTxn(ctx context.Context, adm *kadm.Client, txnID string, lastComplete int64) error {
	m, noted, err := s.readMarker(ctx, adm, txnID)
	if err != nil {
		return err
	}
	described, err := adm.DescribeTransactions(ctx, txnID)
	if err != nil {
		return fmt.Errorf("describe transaction %s: %w", txnID, err)
	}
	d, ok := described[txnID]
	if !ok {
		return fmt.Errorf("describe transaction %s: no answer", txnID)
	}
	if d.Err != nil {
		return fmt.Errorf("describe transaction %s: %w", txnID, d.Err)
	}
	log := s.cfg.logger()
	ours := noted && !m.done && d.ProducerID == m.pid
	switch {
	case d.State == "Ongoing" && ours && d.ProducerEpoch == m.epoch && m.checkpoint <= lastComplete:
		if err := endTxn(ctx, s.admin, txnID, d.ProducerID, d.ProducerEpoch, true); err != nil {
			return err
		}
		if err := s.writeMarker(ctx, adm, txnID, marker{checkpoint: m.checkpoint, done: true}); err != nil {
			return err
		}
		s.transactions.Add(1)
		log.Info("kafka sink: committed the transaction of a complete checkpoint a dead run left open", "transactional_id", txnID, "checkpoint", m.checkpoint)
	case d.State == "Ongoing":
		if err := endTxn(ctx, s.admin, txnID, d.ProducerID, d.ProducerEpoch, false); err != nil {
			return err
		}
		log.Info("kafka sink: aborted a transaction a dead run left open", "transactional_id", txnID)
	case ours && m.checkpoint <= lastComplete && d.State == "CompleteAbort" && d.ProducerEpoch == m.epoch+1:
		// The broker aborted the transaction of a complete checkpoint, most likely at its
		// timeout: its records are gone, and the job will not replay them.
		s.lost.Add(1)
		log.Error("kafka sink: the transaction of a complete checkpoint was aborted by the broker (transaction timeout shorter than the downtime?): its output is lost",
			"transactional_id", txnID, "checkpoint", m.checkpoint)
	}
	return nil
}

// endTxn ends the transaction of producer (pid, epoch) of txnID, which another client (a dead
// run's) opened.
func endTxn(ctx context.Context, cl *kgo.Client, txnID string, pid int64, epoch int16, commit bool) error {
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, commit
	what := map[bool]string{true: "commit", false: "abort"}[commit]
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("%s transaction %s (producer %d, epoch %d): %w", what, txnID, pid, epoch, err)
	}
	return nil
}

// lookup returns the writer of instance i; without create, nil if it has not written yet.
func (s *ExactlyOnceSink[T]) lookup(i int, op string, create bool) (*txWriter, error) {
	if i < 0 {
		return nil, fmt.Errorf("kafka exactly-once sink %s: %s: negative instance %d", s.topic, op, i)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.recovered:
		return nil, fmt.Errorf("kafka exactly-once sink %s: %s before Recover", s.topic, op)
	case s.closed:
		return nil, fmt.Errorf("kafka exactly-once sink %s: %s after Close", s.topic, op)
	}
	if w := s.writers[i]; w != nil {
		return w, nil
	}
	if !create {
		return nil, nil
	}
	w := &txWriter{instance: i, txnID: s.txnID(i)}
	opts := []kgo.Opt{kgo.DefaultProduceTopic(s.topic), kgo.TransactionalID(w.txnID), kgo.TransactionTimeout(s.opts.txnTimeout)}
	if s.opts.linger > 0 {
		opts = append(opts, kgo.ProducerLinger(s.opts.linger))
	}
	cl, err := kgo.NewClient(s.cfg.clientOpts(opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka exactly-once sink %s: instance %d: new client: %w", s.topic, i, err)
	}
	w.client = cl
	s.writers[i] = w
	return w, nil
}

// usable says why the writer cannot write or pre-commit, if it cannot.
func (w *txWriter) usable(topic string) error {
	switch {
	case w.closed:
		return fmt.Errorf("kafka exactly-once sink %s: instance %d: closed", topic, w.instance)
	case w.broken != nil:
		return fmt.Errorf("kafka exactly-once sink %s: instance %d: an earlier failure broke its transaction (restart the job from its last complete checkpoint): %w", topic, w.instance, w.broken)
	}
	return nil
}

func (s *ExactlyOnceSink[T]) breakWriter(w *txWriter, err error) error {
	w.broken = err
	return s.fail(err)
}

// produce sends krs into the writer's open transaction, opening one if need be.
func (s *ExactlyOnceSink[T]) produce(w *txWriter, krs []*kgo.Record) error {
	if len(krs) == 0 {
		return nil
	}
	if !w.inTxn {
		if err := w.client.BeginTransaction(); err != nil {
			return s.breakWriter(w, fmt.Errorf("kafka exactly-once sink %s: instance %d: begin transaction: %w", s.topic, w.instance, err))
		}
		w.inTxn = true
		w.produceErr.Store(nil)
	}
	for _, r := range krs {
		w.client.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			if err != nil {
				w.produceErr.CompareAndSwap(nil, &err)
			}
		})
	}
	w.records += int64(len(krs))
	return nil
}

// WriteBatchFor writes recs into the open transaction of instance, or holds them while a
// pre-committed transaction waits for its checkpoint to complete.
func (s *ExactlyOnceSink[T]) WriteBatchFor(instance int, recs []stream.Record[T]) error {
	w, err := s.lookup(instance, "write", true)
	if err != nil {
		return err
	}
	krs, err := encodeBatch(s.encode, s.topic, recs, make([]*kgo.Record, 0, len(recs)))
	if err != nil {
		return fmt.Errorf("kafka exactly-once sink %s: instance %d: %w", s.topic, instance, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(s.topic); err != nil {
		return err
	}
	s.written.Add(int64(len(krs)))
	if w.upTo > 0 {
		w.held = append(w.held, krs...)
		return nil
	}
	return s.produce(w, krs)
}

// WriteBatch has no instance to write for: a transaction is per writer instance.
func (s *ExactlyOnceSink[T]) WriteBatch([]stream.Record[T]) error {
	return fmt.Errorf("kafka exactly-once sink %s: WriteBatch has no writer instance; use WriteBatchFor", s.topic)
}

// PreCommit flushes the open transaction of instance and notes it as checkpoint n's.
func (s *ExactlyOnceSink[T]) PreCommit(instance int, n int64) error {
	w, err := s.lookup(instance, "pre-commit", false)
	if err != nil || w == nil {
		// An instance that never wrote has nothing to pre-commit, and needs no producer.
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(s.topic); err != nil {
		return err
	}
	if n <= w.lastN {
		return fmt.Errorf("kafka exactly-once sink %s: instance %d: pre-commit at checkpoint %d, not after %d", s.topic, instance, n, w.lastN)
	}
	// Records held since an earlier pre-commit whose checkpoint has not completed (yet, or
	// ever) join its transaction, which checkpoint n now closes.
	held := w.held
	w.held = nil
	if err := s.produce(w, held); err != nil {
		return err
	}
	w.lastN = n
	if !w.inTxn {
		return nil // an empty transaction: nothing to commit
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := w.client.Flush(ctx); err != nil {
		return s.breakWriter(w, fmt.Errorf("kafka exactly-once sink %s: instance %d: flush at checkpoint %d: %w", s.topic, instance, n, err))
	}
	if p := w.produceErr.Load(); p != nil {
		return s.breakWriter(w, fmt.Errorf("kafka exactly-once sink %s: instance %d: produce before checkpoint %d: %w", s.topic, instance, n, *p))
	}
	pid, epoch, err := w.client.ProducerID(ctx)
	if err != nil {
		return s.breakWriter(w, fmt.Errorf("kafka exactly-once sink %s: instance %d: producer id at checkpoint %d: %w", s.topic, instance, n, err))
	}
	if err := s.writeMarker(ctx, kadm.NewClient(w.client), w.txnID, marker{checkpoint: n, pid: pid, epoch: epoch}); err != nil {
		return s.breakWriter(w, fmt.Errorf("kafka exactly-once sink %s: instance %d: %w", s.topic, instance, err))
	}
	w.upTo, w.epoch = n, epoch
	return nil
}

// Commit commits the transactions pre-committed at checkpoints ≤ n, then sends what each
// instance held meanwhile into its next transaction.
func (s *ExactlyOnceSink[T]) Commit(n int64) error {
	s.mu.Lock()
	if !s.recovered {
		s.mu.Unlock()
		return fmt.Errorf("kafka exactly-once sink %s: commit before Recover", s.topic)
	}
	ws := slices.SortedFunc(maps.Values(s.writers), func(a, b *txWriter) int { return cmp.Compare(a.instance, b.instance) })
	s.mu.Unlock()
	// The writers' transactions end at once: one round trip to the brokers, not one per
	// writer, holds up the instance that calls Commit.
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { errs[i] = s.commitWriter(w, n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *ExactlyOnceSink[T]) commitWriter(w *txWriter, n int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.upTo == 0 || w.upTo > n || w.broken != nil || w.closed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := w.client.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return s.breakWriter(w, fmt.Errorf("kafka exactly-once sink %s: instance %d: commit the transaction of checkpoint %d: %w", s.topic, w.instance, w.upTo, err))
	}
	s.committed.Add(w.records)
	s.transactions.Add(1)
	done := marker{checkpoint: w.upTo, done: true}
	w.inTxn, w.records, w.upTo = false, 0, 0
	// A broker with KIP-890 transactions bumps the epoch at each commit, so recovery tells
	// the next transaction from this one by its epoch and needs no note. Older brokers keep
	// the epoch: then the note "done" tells it.
	if _, epoch, err := w.client.ProducerID(ctx); err != nil || epoch == w.epoch {
		if err := s.writeMarker(ctx, kadm.NewClient(w.client), w.txnID, done); err != nil {
			s.cfg.logger().Warn("kafka sink: note a committed transaction", "transactional_id", w.txnID, "err", err)
		}
	}
	held := w.held
	w.held = nil
	return s.produce(w, held)
}

// Close aborts each open transaction that no checkpoint pre-committed (its records will be
// replayed) and leaves pre-committed ones for Commit or the next run's recovery; then it
// closes the producers. A second Close does nothing.
func (s *ExactlyOnceSink[T]) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ws := slices.Collect(maps.Values(s.writers))
	admin := s.admin
	s.mu.Unlock()
	var errs []error
	for _, w := range ws {
		w.mu.Lock()
		w.closed = true
		if w.inTxn && w.upTo == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			err := w.client.AbortBufferedRecords(ctx)
			if err == nil {
				err = w.client.EndTransaction(ctx, kgo.TryAbort)
			}
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("kafka exactly-once sink %s: instance %d: abort the open transaction at close: %w", s.topic, w.instance, err))
			}
			w.inTxn = false
		}
		w.held = nil
		w.client.Close()
		w.mu.Unlock()
	}
	if admin != nil {
		admin.Close()
	}
	return errors.Join(errs...)
}
