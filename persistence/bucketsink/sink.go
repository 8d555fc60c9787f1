package bucketsink

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// Fence is the run's fence as the sink needs it: persistence.FencedCheckpoints.
type Fence interface {
	// Epoch returns the run's epoch.
	Epoch() uint64
	// Confirm makes a write under the run's epoch that the store refuses (an error wrapping
	// persistence.ErrFenced) once a newer epoch is claimed.
	Confirm(ctx context.Context) error
	// Committed reports whether checkpoint id was committed by the run of epoch.
	Committed(id int64, epoch uint64) bool
}

// opTimeout bounds each call to the bucket: the TwoPhaseSink methods have no context.
const opTimeout = time.Minute

// JSONL returns a two-phase sink writing each record's value as one line of JSON into
// objects under prefix (empty, or ending in "/") of bucket; where names the bucket in
// errors. Only committed output is directly under prefix:
//
//	PREFIX part-c<n>-i<i>.jsonl                 instance i's transaction closed by checkpoint n (n 10 digits, i 4, zero-padded)
//	PREFIX .pending/e<epoch>/i<i>-c<n>.jsonl    pre-committed by the run of epoch, not yet committed
//	PREFIX .retracted/part-c<n>-i<i>.jsonl      committed output of a checkpoint a recovery fell back past
//
// An instance's open transaction is held in memory until the barrier that closes it:
// PreCommit uploads it as a pending object of the run's epoch. Commit(n) first confirms the
// run's epoch in the fence (a conditional write the store refuses once a newer run has
// claimed: the sink then returns an error wrapping persistence.ErrFenced and commits
// nothing), then copies each pending object of a checkpoint <= n to its committed name
// (create-if-absent: done twice, it is the same object) and deletes the pending one.
//
// Recover(lastComplete, owns) confirms the epoch likewise, then, for the instances owns
// accepts: commits the pending objects of checkpoints <= lastComplete that the fence's
// lineage says their run committed, deletes every other pending object (of runs fenced off,
// or of checkpoints that never completed), and moves committed objects of checkpoints
// after lastComplete to .retracted. Committed objects carry in their metadata the epoch of
// the run that wrote them ("written-epoch") and of the run that committed them
// ("committed-epoch"): a recovery commits what an earlier run completed.
//
// WriteBatch, which has no instance, returns an error, as in stream.TwoPhaseJSONLSink.
// Close drops what is not pre-committed (it is never committed).
func JSONL[T any](bucket *blob.Bucket, prefix, where string, fence Fence) stream.TwoPhaseSink[T] {
	return &sink[T]{bucket: bucket, prefix: prefix, where: strings.TrimSuffix(where, "/") + "/" + prefix, fence: fence, writers: map[int]*writer{}}
}

type sink[T any] struct {
	bucket *blob.Bucket
	prefix string
	where  string
	fence  Fence

	// mu guards everything below; an instance's writer has its own lock for its buffer.
	mu           sync.Mutex
	recovered    bool
	epoch        uint64 // the run's, taken at Recover
	lastComplete int64
	closed       bool
	writers      map[int]*writer
	// precommitted lists the pending objects of this run not yet committed.
	precommitted []txn
}

// txn is a pre-committed transaction: instance's, closed by checkpoint n in the run of epoch.
type txn struct {
	instance int
	n        int64
	epoch    uint64
}

type writer struct {
	id int

	// mu guards the fields below.
	mu     sync.Mutex
	buf    bytes.Buffer
	enc    *json.Encoder
	lastN  int64
	broken error
	closed bool
}

func (s *sink[T]) pendingKey(t txn) string {
	return fmt.Sprintf("%s.pending/e%020d/i%d-c%d.jsonl", s.prefix, t.epoch, t.instance, t.n)
}

func committedName(n int64, instance int) string {
	return fmt.Sprintf("part-c%010d-i%04d.jsonl", n, instance)
}

// parsePending reads "e<epoch>/i<i>-c<n>.jsonl".
func parsePending(rest string) (txn, bool) {
	es, name, ok := strings.Cut(rest, "/")
	if !ok || !strings.HasPrefix(es, "e") {
		return txn{}, false
	}
	epoch, err := strconv.ParseUint(es[1:], 10, 64)
	if err != nil {
		return txn{}, false
	}
	name, ok = strings.CutSuffix(name, ".jsonl")
	if !ok || !strings.HasPrefix(name, "i") {
		return txn{}, false
	}
	is, ns, ok := strings.Cut(name[1:], "-c")
	if !ok {
		return txn{}, false
	}
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.ParseInt(ns, 10, 64)
	if err1 != nil || err2 != nil || i < 0 || n < 1 {
		return txn{}, false
	}
	return txn{instance: i, n: n, epoch: epoch}, true
}

// parseCommitted reads "part-c<n>-i<i>.jsonl".
func parseCommitted(name string) (n int64, instance int, ok bool) {
	rest, ok := strings.CutPrefix(name, "part-c")
	if !ok {
		return 0, 0, false
	}
	if rest, ok = strings.CutSuffix(rest, ".jsonl"); !ok {
		return 0, 0, false
	}
	ns, is, ok := strings.Cut(rest, "-i")
	if !ok {
		return 0, 0, false
	}
	n, err1 := strconv.ParseInt(ns, 10, 64)
	i, err2 := strconv.Atoi(is)
	if err1 != nil || err2 != nil || committedName(n, i) != name {
		return 0, 0, false
	}
	return n, i, true
}

func (s *sink[T]) WriteBatch([]stream.Record[T]) error {
	return errors.New("bucket jsonl sink: WriteBatch has no writer instance; use WriteBatchFor")
}

// writer returns the writer of instance i, created on first use.
func (s *sink[T]) writer(i int, op string) (*writer, error) {
	if i < 0 {
		return nil, fmt.Errorf("bucket jsonl sink %s: %s: negative instance %d", s.where, op, i)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.recovered:
		return nil, fmt.Errorf("bucket jsonl sink %s: %s before Recover", s.where, op)
	case s.closed:
		return nil, fmt.Errorf("bucket jsonl sink %s: %s after Close", s.where, op)
	}
	w := s.writers[i]
	if w == nil {
		w = &writer{id: i, lastN: s.lastComplete}
		w.enc = json.NewEncoder(&w.buf)
		w.enc.SetEscapeHTML(false)
		s.writers[i] = w
	}
	return w, nil
}

func (w *writer) usable(where string) error {
	switch {
	case w.closed:
		return fmt.Errorf("bucket jsonl sink %s: instance %d: closed", where, w.id)
	case w.broken != nil:
		return fmt.Errorf("bucket jsonl sink %s: instance %d: an earlier failure broke its transaction (recover from the last complete checkpoint): %w", where, w.id, w.broken)
	}
	return nil
}

func (s *sink[T]) WriteBatchFor(instance int, recs []stream.Record[T]) error {
	w, err := s.writer(instance, "write")
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(s.where); err != nil {
		return err
	}
	mark := w.buf.Len()
	for i := range recs {
		if err := w.enc.Encode(recs[i].Value); err != nil {
			w.buf.Truncate(mark)
			return fmt.Errorf("bucket jsonl sink %s: instance %d: encode record %d of %d (nothing of the batch written): %w", s.where, instance, i, len(recs), err)
		}
	}
	return nil
}

func (s *sink[T]) PreCommit(instance int, n int64) error {
	w, err := s.writer(instance, "pre-commit")
	if err != nil {
		return err
	}
	s.mu.Lock()
	epoch := s.epoch
	s.mu.Unlock()
	t, err := s.preCommit(w, n, epoch)
	if err != nil || t == nil {
		return err
	}
	s.mu.Lock()
	s.precommitted = append(s.precommitted, *t)
	s.mu.Unlock()
	return nil
}

// preCommit uploads the open transaction as a pending object of checkpoint n, if it holds
// anything, and returns it.
func (s *sink[T]) preCommit(w *writer, n int64, epoch uint64) (*txn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	bucket, where := s.bucket, s.where
	if err := w.usable(where); err != nil {
		return nil, err
	}
	if n <= w.lastN {
		return nil, fmt.Errorf("bucket jsonl sink %s: instance %d: pre-commit at checkpoint %d, not after %d", where, w.id, n, w.lastN)
	}
	if w.buf.Len() == 0 {
		w.lastN = n // an empty transaction: nothing to keep
		return nil, nil
	}
	t := txn{instance: w.id, n: n, epoch: epoch}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := bucket.WriteAll(ctx, s.pendingKey(t), w.buf.Bytes(), &blob.WriterOptions{ContentType: "application/x-ndjson"}); err != nil {
		w.broken = err
		return nil, fmt.Errorf("bucket jsonl sink %s: pre-commit instance %d at checkpoint %d: %w", where, w.id, n, err)
	}
	w.buf.Reset()
	w.lastN = n
	return &t, nil
}

func (s *sink[T]) Commit(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recovered {
		return fmt.Errorf("bucket jsonl sink %s: commit before Recover", s.where)
	}
	var due []txn
	s.precommitted = slices.DeleteFunc(s.precommitted, func(t txn) bool {
		if t.n <= n {
			due = append(due, t)
			return true
		}
		return false
	})
	if len(due) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.fence.Confirm(ctx); err != nil {
		// Nothing is committed. Fenced off, this sink never will: the newer run's Recover
		// commits what completed. Otherwise (the store failed) a later Commit tries again.
		if !errors.Is(err, persistence.ErrFenced) {
			s.precommitted = append(s.precommitted, due...)
		}
		return fmt.Errorf("bucket jsonl sink %s: commit checkpoint %d: %w", s.where, n, err)
	}
	slices.SortFunc(due, func(a, b txn) int { return cmp.Or(cmp.Compare(a.n, b.n), cmp.Compare(a.instance, b.instance)) })
	for i, t := range due {
		if err := s.commitTxn(ctx, t); err != nil {
			s.precommitted = append(s.precommitted, due[i:]...)
			return fmt.Errorf("bucket jsonl sink %s: commit checkpoint %d: %w", s.where, n, err)
		}
	}
	return nil
}

// commitTxn copies t's pending object to its committed name, unless it is there already,
// and deletes the pending one.
func (s *sink[T]) commitTxn(ctx context.Context, t txn) error {
	from := s.pendingKey(t)
	data, err := s.bucket.ReadAll(ctx, from)
	if err != nil {
		return fmt.Errorf("read %s: %w", from, err)
	}
	to := s.prefix + committedName(t.n, t.instance)
	err = s.bucket.WriteAll(ctx, to, data, &blob.WriterOptions{ContentType: "application/x-ndjson", IfNotExist: true,
		Metadata: map[string]string{"written-epoch": strconv.FormatUint(t.epoch, 10), "committed-epoch": strconv.FormatUint(s.epoch, 10)}})
	if err != nil && gcerrors.Code(err) != gcerrors.FailedPrecondition {
		return fmt.Errorf("commit %s to %s: %w", from, to, err)
	}
	if err := s.bucket.Delete(ctx, from); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", from, err)
	}
	return nil
}

func (s *sink[T]) Recover(lastComplete int64, owns func(instance int) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owns == nil {
		owns = func(int) bool { return true }
	}
	for _, w := range s.writers {
		w.mu.Lock()
		w.closed = true // a restart: open transactions are abandoned
		w.mu.Unlock()
	}
	s.writers, s.precommitted = map[int]*writer{}, nil
	s.epoch = s.fence.Epoch()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.fence.Confirm(ctx); err != nil {
		return fmt.Errorf("bucket jsonl sink %s: recover to checkpoint %d: %w", s.where, lastComplete, err)
	}
	var commit, drop []txn
	err := s.list(ctx, s.prefix+".pending/", "", func(rest string) {
		t, ok := parsePending(rest)
		switch {
		case !ok || !owns(t.instance):
		case t.n <= lastComplete && s.fence.Committed(t.n, t.epoch):
			commit = append(commit, t)
		default:
			drop = append(drop, t)
		}
	})
	if err != nil {
		return fmt.Errorf("bucket jsonl sink %s: recover: %w", s.where, err)
	}
	for _, t := range commit {
		if err := s.commitTxn(ctx, t); err != nil {
			return fmt.Errorf("bucket jsonl sink %s: recover to checkpoint %d: %w", s.where, lastComplete, err)
		}
	}
	for _, t := range drop {
		if err := s.bucket.Delete(ctx, s.pendingKey(t)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("bucket jsonl sink %s: recover: discard %s: %w", s.where, s.pendingKey(t), err)
		}
	}
	// Committed output of checkpoints after lastComplete: a recovery that fell back.
	var retract []string
	err = s.list(ctx, s.prefix, "/", func(name string) {
		if n, i, ok := parseCommitted(name); ok && n > lastComplete && owns(i) {
			retract = append(retract, name)
		}
	})
	if err != nil {
		return fmt.Errorf("bucket jsonl sink %s: recover: %w", s.where, err)
	}
	for _, name := range retract {
		if err := s.bucket.Copy(ctx, s.prefix+".retracted/"+name, s.prefix+name, nil); err != nil {
			return fmt.Errorf("bucket jsonl sink %s: recover: retract %s: %w", s.where, name, err)
		}
		if err := s.bucket.Delete(ctx, s.prefix+name); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("bucket jsonl sink %s: recover: retract %s: %w", s.where, name, err)
		}
	}
	s.recovered, s.closed, s.lastComplete = true, false, lastComplete
	return nil
}

// list calls found with the rest of each key under prefix; with delimiter "/", only those
// not in a sub-"directory".
func (s *sink[T]) list(ctx context.Context, prefix, delimiter string, found func(rest string)) error {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: delimiter})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !obj.IsDir {
			found(strings.TrimPrefix(obj.Key, prefix))
		}
	}
}

func (s *sink[T]) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, w := range s.writers {
		w.mu.Lock()
		w.closed = true
		w.buf = bytes.Buffer{}
		w.mu.Unlock()
	}
	return nil
}
