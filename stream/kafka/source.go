package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/stream"
)

// StartAt says where a source starts reading a partition that has no offset in the
// checkpoint it is restored from (every partition, on a first run).
type StartAt struct {
	kind  startKind
	milli int64
	group string
}

type startKind uint8

const (
	startEarliest startKind = iota
	startLatest
	startTime
	startCommitted
)

// Earliest starts at the oldest record a partition still holds (the default).
func Earliest() StartAt { return StartAt{kind: startEarliest} }

// Latest starts after the last record a partition holds when the source starts.
func Latest() StartAt { return StartAt{kind: startLatest} }

// AtTime starts at the first record whose timestamp is at or after t (the end of the
// partition when there is none).
func AtTime(t time.Time) StartAt { return StartAt{kind: startTime, milli: t.UnixMilli()} }

// Committed starts at the offsets group committed, and at the earliest record of partitions
// it committed nothing for.
func Committed(group string) StartAt { return StartAt{kind: startCommitted, group: group} }

// SourceOption configures a Source.
type SourceOption func(*sourceOpts)

type sourceOpts struct {
	start          StartAt
	watermarks     any // stream.WatermarkStrategy[T], checked in Source
	idle           time.Duration
	discovery      time.Duration
	readUncommit   bool
	clock          stream.Clock
	eventTime      any // func(T, *Message) int64
	createParts    int32
	pollWait       time.Duration
	commitGroup    string
	maxPollRecords int
}

// StartFrom sets where partitions without a checkpointed offset start (Earliest by default).
func StartFrom(s StartAt) SourceOption { return func(o *sourceOpts) { o.start = s } }

// Watermarks generates the source's watermarks with strategy, applied to each partition on
// its own; a split's watermark is the minimum over its partitions that are not idle. Use it
// instead of graph.Timestamps after the source: Timestamps would replace the per-partition
// watermarks with one generator over the interleaved partitions.
func Watermarks[T any](strategy stream.WatermarkStrategy[T]) SourceOption {
	return func(o *sourceOpts) { o.watermarks = strategy }
}

// EventTime sets each record's event time (Unix ms) from its value and message; by default
// it is the Kafka record's timestamp.
func EventTime[T any](f func(v T, m *Message) int64) SourceOption {
	return func(o *sourceOpts) { o.eventTime = f }
}

// IdleAfter lets a partition that has had no record for d stop holding the split's
// watermark back, until its next record (0, the default: never). One quiet partition then
// does not stall event time.
func IdleAfter(d time.Duration) SourceOption { return func(o *sourceOpts) { o.idle = d } }

// DiscoverEvery looks for new partitions of the topics every d while running (10s by
// default; negative: never). A new partition is read from its earliest record.
func DiscoverEvery(d time.Duration) SourceOption { return func(o *sourceOpts) { o.discovery = d } }

// ReadUncommitted reads records of open and aborted transactions too. By default the source
// reads committed records only (read_committed), so that it can follow an exactly-once sink.
func ReadUncommitted() SourceOption { return func(o *sourceOpts) { o.readUncommit = true } }

// SourceClock sets the clock that idleness and discovery are measured with (tests).
func SourceClock(c stream.Clock) SourceOption { return func(o *sourceOpts) { o.clock = c } }

// CreateSourceTopics creates the topics that do not exist yet, with partitions partitions,
// when the source starts.
func CreateSourceTopics(partitions int32) SourceOption {
	return func(o *sourceOpts) { o.createParts = partitions }
}

// CommitOffsetsTo commits the offsets of each checkpoint to group, as a courtesy for lag
// monitoring tools: the source itself restarts from its checkpoints, never from them.
func CommitOffsetsTo(group string) SourceOption { return func(o *sourceOpts) { o.commitGroup = group } }

// KafkaSource reads topics of a Kafka cluster; see Source.
type KafkaSource[T any] struct {
	cfg       Config
	topics    []string
	decode    Decoder[T]
	opts      sourceOpts
	wm        stream.WatermarkStrategy[T]
	eventTime func(T, *Message) int64
	err       error

	// mu guards splits, the splits of the last Splits call (for Stats).
	mu     sync.Mutex
	splits []*split[T]
}

// Source reads topics with decode. Its splits are the job's source instances: topic
// partitions are spread over them by a fixed rule (not a consumer group), each split reads
// its partitions directly, and its position lives in Eddy's checkpoints (the splits are
// replayable). Records carry the Kafka timestamp as their event time unless
// EventTime says otherwise. A record that does not decode goes to the dead-letter output
// with its topic, partition and offset.
//
// Restoring a checkpoint taken at another source parallelism is refused with an error: the
// partitions would move between splits.
func Source[T any](cfg Config, topics []string, decode Decoder[T], opts ...SourceOption) *KafkaSource[T] {
	s := &KafkaSource[T]{cfg: cfg, topics: slices.Clone(topics), decode: decode}
	s.opts = sourceOpts{discovery: 10 * time.Second, clock: stream.RealClock{}, pollWait: 5 * time.Millisecond, maxPollRecords: 0}
	for _, o := range opts {
		o(&s.opts)
	}
	s.err = s.validate()
	return s
}

func (s *KafkaSource[T]) validate() error {
	if err := s.cfg.validate(); err != nil {
		return err
	}
	switch {
	case len(s.topics) == 0:
		return errors.New("kafka source: no topics")
	case s.decode == nil:
		return errors.New("kafka source: nil decoder")
	case s.opts.idle < 0:
		return fmt.Errorf("kafka source: idle timeout %v, want 0 or more", s.opts.idle)
	case s.opts.clock == nil:
		return errors.New("kafka source: nil clock")
	case s.opts.start.kind == startCommitted && s.opts.start.group == "":
		return errors.New("kafka source: start from the committed offsets of an empty group name")
	}
	for _, t := range s.topics {
		if t == "" || len(t) > maxTopicLen {
			return fmt.Errorf("kafka source: topic name %q", t)
		}
	}
	if s.opts.watermarks != nil {
		wm, ok := s.opts.watermarks.(stream.WatermarkStrategy[T])
		if !ok {
			return fmt.Errorf("kafka source: a watermark strategy of %T, not of the source's type", s.opts.watermarks)
		}
		s.wm = wm
	}
	if s.opts.eventTime != nil {
		f, ok := s.opts.eventTime.(func(T, *Message) int64)
		if !ok {
			return fmt.Errorf("kafka source: an event time function of %T, not of the source's type", s.opts.eventTime)
		}
		s.eventTime = f
	}
	return nil
}

// Splits makes n splits; split i reads the partitions owner assigns to i.
func (s *KafkaSource[T]) Splits(n int) ([]stream.Split[T], error) {
	if s.err != nil {
		return nil, s.err
	}
	n = max(n, 1)
	splits := make([]*split[T], n)
	out := make([]stream.Split[T], n)
	for i := range splits {
		splits[i] = &split[T]{src: s, index: i, count: n, parts: map[topicPartition]*partition[T]{}}
		out[i] = splits[i]
	}
	s.mu.Lock()
	s.splits = splits
	s.mu.Unlock()
	return out, nil
}

// owner returns the split of n that reads tp: the topic's hash picks where its partitions
// start, then they go round-robin (Flink's KafkaSource rule), so a topic's partitions spread
// evenly and a new partition never moves an old one.
func owner(tp topicPartition, n int) int {
	h := fnv.New32a()
	h.Write([]byte(tp.topic))
	return int((uint64(h.Sum32()&0x7fffffff) + uint64(tp.partition)) % uint64(n))
}

// PartitionStats is the state of one partition a source reads.
type PartitionStats struct {
	Topic     string
	Partition int32
	// Split is the index of the split that reads it.
	Split int
	// Next is the offset of the next record to read; HighWatermark the offset after the last
	// record the broker reported; Lag their difference.
	Next, HighWatermark, Lag int64
	// Records read and dead letters sent since the split started.
	Records, DeadLetters int64
	// Watermark is the partition's own watermark (stream.MinWatermark before its first).
	Watermark int64
	// Idle says whether it has stopped holding the watermark back (IdleAfter).
	Idle bool
}

// SourceStats is a snapshot of a source's progress.
type SourceStats struct {
	// Partitions, sorted by topic and partition.
	Partitions []PartitionStats
	// Records and DeadLetters over all partitions; Lag their summed lag.
	Records, DeadLetters, Lag int64
	// LastRecord is when a split last read a record (zero before the first).
	LastRecord time.Time
}

// Stats reports the consumer lag and counts of every partition the splits of the last
// Splits call read. Safe to call at any time from any goroutine.
func (s *KafkaSource[T]) Stats() SourceStats {
	s.mu.Lock()
	splits := s.splits
	s.mu.Unlock()
	var st SourceStats
	for _, sp := range splits {
		sp.statsMu.Lock()
		for tp, p := range sp.parts {
			ps := PartitionStats{Topic: tp.topic, Partition: tp.partition, Split: sp.index, Next: p.next, HighWatermark: p.highWatermark,
				Records: p.records, DeadLetters: p.deadLetters, Watermark: p.wm, Idle: p.idle}
			ps.Lag = max(0, ps.HighWatermark-ps.Next)
			st.Partitions = append(st.Partitions, ps)
			st.Records += ps.Records
			st.DeadLetters += ps.DeadLetters
			st.Lag += ps.Lag
		}
		if sp.lastRecord.After(st.LastRecord) {
			st.LastRecord = sp.lastRecord
		}
		sp.statsMu.Unlock()
	}
	slices.SortFunc(st.Partitions, func(a, b PartitionStats) int {
		return compareTP(topicPartition{a.Topic, a.Partition}, topicPartition{b.Topic, b.Partition})
	})
	return st
}

// split reads the partitions of its topics that owner assigns to it.
type split[T any] struct {
	src          *KafkaSource[T]
	index, count int

	client *kgo.Client
	adm    *kadm.Client
	// seeked holds the offsets a Seek restored, until the split starts.
	seeked       map[topicPartition]int64
	started      bool
	lastDiscover time.Time
	// wmEmitted is the last watermark handed on.
	wmEmitted int64
	// commit runs the courtesy offset commits; nil without CommitOffsetsTo.
	commit *committer

	// statsMu guards parts (its map and the counters of its entries) and lastRecord against
	// Stats; the split's own goroutine is the only writer.
	statsMu    sync.Mutex
	parts      map[topicPartition]*partition[T]
	lastRecord time.Time
}

// partition is what a split keeps per partition.
type partition[T any] struct {
	next          int64
	highWatermark int64
	records       int64
	deadLetters   int64
	gen           stream.WatermarkGenerator[T]
	wm            int64
	// lastActive is when the partition last had a record, or was assigned.
	lastActive time.Time
	idle       bool
}

// Offset returns the next offset of every partition the split reads (and, before it
// starts, of every partition a Seek gave it).
func (sp *split[T]) Offset() ([]byte, error) {
	o := splitOffsets{splits: sp.count, index: sp.index, next: map[topicPartition]int64{}}
	if !sp.started {
		for tp, off := range sp.seeked {
			o.next[tp] = off
		}
	}
	for tp, p := range sp.parts {
		o.next[tp] = p.next
	}
	if sp.commit != nil {
		sp.commit.offer(o.next)
	}
	return encodeOffsets(o), nil
}

// Seek restores the offsets of a checkpoint; the split reads from them when it starts.
func (sp *split[T]) Seek(off []byte) error {
	if sp.started {
		return fmt.Errorf("kafka source split %d: seek after the first read", sp.index)
	}
	o, err := decodeOffsets(off)
	if err != nil {
		return fmt.Errorf("kafka source split %d: seek: %w", sp.index, err)
	}
	if o.splits != sp.count || o.index != sp.index {
		return fmt.Errorf("kafka source split %d of %d: the checkpoint is of split %d of %d; restoring at another source parallelism is not supported (partitions would move between splits)",
			sp.index, sp.count, o.index, o.splits)
	}
	for tp := range o.next {
		if !slices.Contains(sp.src.topics, tp.topic) {
			return fmt.Errorf("kafka source split %d: seek: the checkpoint has partition %s of a topic the source does not read", sp.index, tp)
		}
		if owner(tp, sp.count) != sp.index {
			return fmt.Errorf("kafka source split %d: seek: partition %s belongs to split %d", sp.index, tp, owner(tp, sp.count))
		}
	}
	sp.seeked = o.next
	return nil
}

// start connects, lists the partitions and resolves where each starts.
func (sp *split[T]) start(ctx context.Context) error {
	s := sp.src
	iso := kgo.ReadCommitted()
	if s.opts.readUncommit {
		iso = kgo.ReadUncommitted()
	}
	cl, err := kgo.NewClient(s.cfg.clientOpts(kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(250*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("kafka source split %d: new client: %w", sp.index, err)
	}
	sp.client, sp.adm = cl, kadm.NewClient(cl)
	if s.opts.createParts > 0 {
		if err := createTopics(ctx, sp.adm, s.opts.createParts, s.topics); err != nil {
			return fmt.Errorf("kafka source split %d: %w", sp.index, err)
		}
	}
	sp.started = true
	sp.wmEmitted = stream.MinWatermark
	if s.opts.commitGroup != "" {
		sp.commit = newCommitter(sp.adm, s.opts.commitGroup, s.cfg.logger())
	}
	return sp.discover(ctx, true)
}

// discover adds the partitions of the topics this split owns and does not read yet. On the
// first call they start where a Seek said, else where StartFrom says; later ones (new
// partitions) start at their earliest record.
func (sp *split[T]) discover(ctx context.Context, first bool) error {
	s := sp.src
	sp.lastDiscover = s.opts.clock.Now()
	// A metadata request of its own, not kadm's cached metadata: a new partition must show.
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range s.topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, sp.client)
	if err != nil {
		return fmt.Errorf("kafka source split %d: list partitions of %v: %w", sp.index, s.topics, err)
	}
	partitions := map[string][]int32{}
	for _, rt := range resp.Topics {
		if rt.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			if first {
				return fmt.Errorf("kafka source split %d: topic %s: %w", sp.index, *rt.Topic, err)
			}
			continue
		}
		for _, p := range rt.Partitions {
			partitions[*rt.Topic] = append(partitions[*rt.Topic], p.Partition)
		}
	}
	var fresh []topicPartition
	for _, t := range s.topics {
		ps, ok := partitions[t]
		if !ok && first {
			return fmt.Errorf("kafka source split %d: topic %s: not in the metadata", sp.index, t)
		}
		for _, p := range ps {
			tp := topicPartition{t, p}
			if owner(tp, sp.count) != sp.index {
				continue
			}
			if _, ok := sp.parts[tp]; !ok {
				fresh = append(fresh, tp)
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	slices.SortFunc(fresh, compareTP)
	starts, err := sp.startOffsets(ctx, fresh, first)
	if err != nil {
		return fmt.Errorf("kafka source split %d: %w", sp.index, err)
	}
	add := map[string]map[int32]kgo.Offset{}
	now := s.opts.clock.Now()
	sp.statsMu.Lock()
	for _, tp := range fresh {
		p := &partition[T]{next: starts[tp], highWatermark: starts[tp], wm: stream.MinWatermark, lastActive: now}
		if s.wm != nil {
			p.gen = s.wm.NewGenerator()
		}
		sp.parts[tp] = p
		if add[tp.topic] == nil {
			add[tp.topic] = map[int32]kgo.Offset{}
		}
		add[tp.topic][tp.partition] = kgo.NewOffset().At(starts[tp])
	}
	sp.statsMu.Unlock()
	sp.client.AddConsumePartitions(add)
	if !first {
		// The client's own metadata may not know the new partitions for minutes.
		sp.client.ForceMetadataRefresh()
		s.cfg.logger().Info("kafka source: new partitions", "split", sp.index, "partitions", fmt.Sprint(fresh))
	}
	return nil
}

// startOffsets resolves where each of tps starts, as concrete offsets, so that a checkpoint
// taken before a partition's first record still says where it was.
func (sp *split[T]) startOffsets(ctx context.Context, tps []topicPartition, first bool) (map[topicPartition]int64, error) {
	s := sp.src
	out := map[topicPartition]int64{}
	var need []topicPartition
	for _, tp := range tps {
		if off, ok := sp.seeked[tp]; ok && first {
			out[tp] = off
		} else {
			need = append(need, tp)
		}
	}
	if len(need) == 0 {
		return out, nil
	}
	// A partition found later, or missing from the checkpoint a run restored (it appeared
	// while the job was down), is new: all of its records are read.
	start := s.opts.start
	if !first || sp.seeked != nil {
		start = Earliest()
	}
	var committed kadm.OffsetResponses
	if start.kind == startCommitted {
		var err error
		// A group that never committed starts every partition at its earliest record.
		if committed, err = sp.adm.FetchOffsets(ctx, start.group); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("fetch the offsets group %s committed: %w", start.group, err)
		}
	}
	var listed kadm.ListedOffsets
	var err error
	switch start.kind {
	case startLatest:
		listed, err = sp.adm.ListEndOffsets(ctx, s.topics...)
	case startTime:
		listed, err = sp.adm.ListOffsetsAfterMilli(ctx, start.milli, s.topics...)
	default:
		listed, err = sp.adm.ListStartOffsets(ctx, s.topics...)
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	for _, tp := range need {
		if start.kind == startCommitted {
			if o, ok := committed.Lookup(tp.topic, tp.partition); ok && o.Err == nil && o.At >= 0 {
				out[tp] = o.At
				continue
			}
		}
		lo, ok := listed.Lookup(tp.topic, tp.partition)
		if !ok {
			return nil, fmt.Errorf("list offsets: no answer for partition %s", tp)
		}
		if lo.Err != nil {
			return nil, fmt.Errorf("list offsets of partition %s: %w", tp, lo.Err)
		}
		out[tp] = lo.Offset
	}
	return out, nil
}

// Read polls at most max records, waiting a few milliseconds when none are buffered.
func (sp *split[T]) Read(ctx context.Context, max int, out stream.Output[T]) (int, error) {
	s := sp.src
	if !sp.started {
		if err := sp.start(ctx); err != nil {
			return 0, err
		}
	}
	if s.opts.discovery > 0 && s.opts.clock.Now().Sub(sp.lastDiscover) >= s.opts.discovery {
		if err := sp.discover(ctx, false); err != nil {
			// Discovery is best effort: the partitions already read go on.
			s.cfg.logger().Warn("kafka source: partition discovery failed", "split", sp.index, "err", err)
		}
	}
	if max <= 0 {
		return 0, nil
	}
	pollCtx, cancel := context.WithTimeout(ctx, s.opts.pollWait)
	fetches := sp.client.PollRecords(pollCtx, max)
	cancel()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if fetches.IsClientClosed() {
		return 0, fmt.Errorf("kafka source split %d: client closed", sp.index)
	}
	now := s.opts.clock.Now()
	n := 0
	var msg Message
	sp.statsMu.Lock()
	defer sp.statsMu.Unlock()
	var fetchErr error
	fetches.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		s.cfg.logger().Warn("kafka source: fetch error", "split", sp.index, "partition", topicPartition{t, p}.String(), "err", err)
		if fetchErr == nil && !kerr.IsRetriable(err) {
			fetchErr = fmt.Errorf("kafka source split %d: fetch %s/%d: %w", sp.index, t, p, err)
		}
	})
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		p := sp.parts[topicPartition{fp.Topic, fp.Partition}]
		if p == nil {
			return
		}
		if fp.HighWatermark > p.highWatermark {
			p.highWatermark = fp.HighWatermark
		}
		for _, r := range fp.Records {
			if r.Offset < p.next {
				continue // already read (a fetch that raced a restart of the partition)
			}
			p.next = r.Offset + 1
			p.lastActive, p.idle = now, false // a malformed record is activity too
			msg = Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			if len(r.Headers) > 0 {
				msg.Headers = make([]Header, len(r.Headers))
				for i, h := range r.Headers {
					msg.Headers[i] = Header{Key: h.Key, Value: h.Value}
				}
			}
			v, err := s.decode(&msg)
			if err != nil {
				p.deadLetters++
				out.DeadLetter(stream.DeadLetter{
					Reason:   fmt.Sprintf("%s/%d:%d: %v", r.Topic, r.Partition, r.Offset, err),
					Value:    string(r.Value),
					Position: r.Offset,
					Time:     r.Timestamp.UnixMilli(),
				})
				continue
			}
			ts := r.Timestamp.UnixMilli()
			if sp.src.eventTime != nil {
				ts = sp.src.eventTime(v, &msg)
			}
			p.observe(v, ts)
			p.records++
			n++
			out.Emit(stream.Record[T]{Value: v, Time: ts})
		}
		p.batchEnd()
	})
	if n > 0 {
		sp.lastRecord = now
	}
	if s.wm != nil {
		sp.emitWatermark(now, out)
	}
	// A retriable error (a leader moving) is franz-go's to retry; another one fails the
	// split, and the job recovers from its last checkpoint.
	if n == 0 && fetchErr != nil {
		return 0, fetchErr
	}
	return n, nil
}

// emitWatermark hands on the split's watermark when it has advanced.
func (sp *split[T]) emitWatermark(now time.Time, out stream.Output[T]) {
	if w, ok := splitWatermark(sp.parts, sp.src.opts.idle, now, sp.wmEmitted); ok {
		sp.wmEmitted = w
		out.Watermark(w)
	}
}

// observe shows a record to the partition's watermark generator.
func (p *partition[T]) observe(v T, ts int64) {
	if p.gen == nil {
		return
	}
	if w, ok := p.gen.OnRecord(v, ts); ok && w > p.wm {
		p.wm = w
	}
}

// batchEnd lets a periodic generator move the partition's watermark after a fetch.
func (p *partition[T]) batchEnd() {
	if p.gen == nil {
		return
	}
	if w, ok := p.gen.OnBatchEnd(); ok && w > p.wm {
		p.wm = w
	}
}

// splitWatermark is the minimum watermark of the partitions that are not idle at now (those
// without a record for idle, when idle > 0; it marks them), and whether it is above emitted.
// With every partition idle (or none) there is none: the split is idle, and the runtime's
// idle timeout (graph.IdleTimeout) lets the stages after it go on without it.
func splitWatermark[T any](parts map[topicPartition]*partition[T], idle time.Duration, now time.Time, emitted int64) (int64, bool) {
	low, active := stream.MaxWatermark, 0
	for _, p := range parts {
		if idle > 0 && now.Sub(p.lastActive) >= idle {
			p.idle = true
			continue
		}
		active++
		low = min(low, p.wm)
	}
	if active == 0 || low == stream.MinWatermark || low <= emitted {
		return 0, false
	}
	return low, true
}

// Close closes the client and waits for the courtesy commits to stop.
func (sp *split[T]) Close() error {
	if sp.commit != nil {
		sp.commit.close()
	}
	if sp.client != nil {
		sp.client.Close()
	}
	return nil
}
