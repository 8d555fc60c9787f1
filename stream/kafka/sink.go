package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/stream"
)

// SinkOption configures a sink.
type SinkOption func(*sinkOpts)

type sinkOpts struct {
	createParts int32
	txnTimeout  time.Duration
	linger      time.Duration
}

// CreateSinkTopic creates the sink's topic, with partitions partitions, when it does not
// exist yet.
func CreateSinkTopic(partitions int32) SinkOption {
	return func(o *sinkOpts) { o.createParts = partitions }
}

// TransactionTimeout sets how long the broker keeps a transaction of the exactly-once sink
// open (1 minute by default). The transaction of a checkpoint stays open from its first
// record until the checkpoint completes, and, after a crash, until the restarted job
// recovers: a broker aborts it after the timeout, and the output of a checkpoint that
// completed is then lost. Make it longer than a checkpoint interval plus the longest
// expected downtime, within the broker's transaction.max.timeout.ms.
func TransactionTimeout(d time.Duration) SinkOption { return func(o *sinkOpts) { o.txnTimeout = d } }

// Linger sets how long the producer waits to fill a batch (franz-go's default, 0, when not
// set).
func Linger(d time.Duration) SinkOption { return func(o *sinkOpts) { o.linger = d } }

// SinkStats is a snapshot of a sink's progress.
type SinkStats struct {
	// Written is the number of records handed to the producer; Committed of those the
	// brokers acknowledged (at-least-once) or whose transaction committed (exactly-once).
	Written, Committed int64
	// Transactions committed (exactly-once only).
	Transactions int64
	// LostTransactions counts transactions of complete checkpoints that recovery found
	// aborted by the broker (exactly-once only; see TransactionTimeout). Their output is
	// lost; it is logged at level ERROR too.
	LostTransactions int64
}

// encodeBatch turns recs into Kafka records for topic; a value that does not encode is an
// error and nothing of the batch is returned.
func encodeBatch[T any](encode Encoder[T], topic string, recs []stream.Record[T], dst []*kgo.Record) ([]*kgo.Record, error) {
	for i := range recs {
		var m Message
		if err := encode(recs[i].Value, &m); err != nil {
			return dst[:0], fmt.Errorf("encode record %d of %d (nothing of the batch written): %w", i, len(recs), err)
		}
		r := &kgo.Record{Topic: m.Topic, Key: m.Key, Value: m.Value, Timestamp: m.Timestamp}
		if r.Topic == "" {
			r.Topic = topic
		}
		if r.Timestamp.IsZero() && recs[i].Time != 0 {
			r.Timestamp = time.UnixMilli(recs[i].Time)
		}
		for _, h := range m.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		dst = append(dst, r)
	}
	return dst, nil
}

// AtLeastOnceSink writes to a topic with an idempotent producer; see AtLeastOnce.
type AtLeastOnceSink[T any] struct {
	cfg    Config
	topic  string
	encode Encoder[T]
	opts   sinkOpts

	// mu guards client and startErr (the client starts with the first write).
	mu       sync.Mutex
	client   *kgo.Client
	startErr error

	// failed holds the first produce error not yet reported.
	failed             atomic.Pointer[error]
	written, committed atomic.Int64

	// pendingMu guards pending: per writer instance, its records not acknowledged yet, so
	// that an instance's pre-commit waits for its own records only, not for what the
	// others produce meanwhile (a Flush of the shared producer would).
	pendingMu sync.Mutex
	pending   map[int]*instancePending
}

// instancePending counts an instance's records in flight; acked is closed (and replaced)
// when the count falls to zero.
type instancePending struct {
	n     int64
	acked chan struct{}
}

var _ stream.TwoPhaseSink[int] = (*AtLeastOnceSink[int])(nil)

// AtLeastOnce writes each record to topic (or to the topic its Encoder names) with an
// idempotent producer, partitioned by key. Records are produced asynchronously; at each
// checkpoint barrier a writer instance waits until every record it wrote before it is
// acknowledged (it is a stream.TwoPhaseSink whose pre-commit is that wait; the other
// instances go on producing meanwhile), so a checkpoint completes only when
// its output is in Kafka: after a crash the job replays from the checkpoint and records may
// be written twice, never lost. A failed produce fails the next pre-commit, so its
// checkpoint never completes.
func AtLeastOnce[T any](cfg Config, topic string, encode Encoder[T], opts ...SinkOption) (*AtLeastOnceSink[T], error) {
	s := &AtLeastOnceSink[T]{cfg: cfg, topic: topic, encode: encode}
	for _, o := range opts {
		o(&s.opts)
	}
	if err := checkSink(cfg, topic, encode); err != nil {
		return nil, err
	}
	return s, nil
}

func checkSink[T any](cfg Config, topic string, encode Encoder[T]) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if topic == "" || len(topic) > maxTopicLen {
		return fmt.Errorf("kafka sink: topic name %q", topic)
	}
	if encode == nil {
		return errors.New("kafka sink: nil encoder")
	}
	return nil
}

func (s *AtLeastOnceSink[T]) clientFor() (*kgo.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil || s.startErr != nil {
		return s.client, s.startErr
	}
	opts := []kgo.Opt{kgo.DefaultProduceTopic(s.topic)}
	if s.opts.linger > 0 {
		opts = append(opts, kgo.ProducerLinger(s.opts.linger))
	}
	cl, err := kgo.NewClient(s.cfg.clientOpts(opts...)...)
	if err != nil {
		s.startErr = fmt.Errorf("kafka sink %s: new client: %w", s.topic, err)
		return nil, s.startErr
	}
	if s.opts.createParts > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = createTopics(ctx, kadm.NewClient(cl), s.opts.createParts, []string{s.topic})
		cancel()
		if err != nil {
			cl.Close()
			s.startErr = fmt.Errorf("kafka sink: %w", err)
			return nil, s.startErr
		}
	}
	s.client = cl
	return cl, nil
}

// WriteBatch produces recs asynchronously, as instance 0's.
func (s *AtLeastOnceSink[T]) WriteBatch(recs []stream.Record[T]) error {
	return s.WriteBatchFor(0, recs)
}

// WriteBatchFor produces recs asynchronously for writer instance i; every instance shares
// one producer.
func (s *AtLeastOnceSink[T]) WriteBatchFor(instance int, recs []stream.Record[T]) error {
	if errp := s.failed.Load(); errp != nil {
		return fmt.Errorf("kafka sink %s: an earlier produce failed: %w", s.topic, *errp)
	}
	cl, err := s.clientFor()
	if err != nil {
		return err
	}
	krs, err := encodeBatch(s.encode, s.topic, recs, make([]*kgo.Record, 0, len(recs)))
	if err != nil {
		return fmt.Errorf("kafka sink %s: %w", s.topic, err)
	}
	if len(krs) == 0 {
		return nil
	}
	ip := s.instancePending(instance)
	s.pendingMu.Lock()
	ip.n += int64(len(krs))
	s.pendingMu.Unlock()
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			s.failed.CompareAndSwap(nil, &err)
		} else {
			s.committed.Add(1)
		}
		s.pendingMu.Lock()
		ip.n--
		if ip.n == 0 {
			close(ip.acked)
			ip.acked = make(chan struct{})
		}
		s.pendingMu.Unlock()
	}
	for _, r := range krs {
		cl.Produce(context.Background(), r, done)
	}
	s.written.Add(int64(len(krs)))
	return nil
}

func (s *AtLeastOnceSink[T]) instancePending(i int) *instancePending {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if s.pending == nil {
		s.pending = map[int]*instancePending{}
	}
	ip := s.pending[i]
	if ip == nil {
		ip = &instancePending{acked: make(chan struct{})}
		s.pending[i] = ip
	}
	return ip
}

// PreCommit waits until every record instance wrote so far is acknowledged.
func (s *AtLeastOnceSink[T]) PreCommit(instance int, n int64) error {
	ip := s.instancePending(instance)
	timeout := time.NewTimer(opTimeout)
	defer timeout.Stop()
	for {
		s.pendingMu.Lock()
		left, acked := ip.n, ip.acked
		s.pendingMu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-acked:
		case <-timeout.C:
			return fmt.Errorf("kafka sink %s: instance %d: %d records not acknowledged %v after checkpoint %d", s.topic, instance, left, opTimeout, n)
		}
	}
	if errp := s.failed.Load(); errp != nil {
		return fmt.Errorf("kafka sink %s: a produce before checkpoint %d failed: %w", s.topic, n, *errp)
	}
	return nil
}

// Commit does nothing: what a checkpoint covers was acknowledged at its pre-commit.
func (s *AtLeastOnceSink[T]) Commit(int64) error { return nil }

// Recover does nothing: there is nothing pending in Kafka to finish.
func (s *AtLeastOnceSink[T]) Recover(int64, func(int) bool) error { return nil }

// Stats reports how many records were written and acknowledged.
func (s *AtLeastOnceSink[T]) Stats() SinkStats {
	return SinkStats{Written: s.written.Load(), Committed: s.committed.Load()}
}

// Close flushes what is buffered and closes the producer.
func (s *AtLeastOnceSink[T]) Close() error {
	s.mu.Lock()
	cl := s.client
	s.client, s.startErr = nil, errors.New("kafka sink: closed")
	s.mu.Unlock()
	if cl == nil {
		return nil
	}
	err := cl.Flush(context.Background())
	cl.Close()
	if err != nil {
		return fmt.Errorf("kafka sink %s: flush at close: %w", s.topic, err)
	}
	if errp := s.failed.Load(); errp != nil {
		return fmt.Errorf("kafka sink %s: a produce failed: %w", s.topic, *errp)
	}
	return nil
}
