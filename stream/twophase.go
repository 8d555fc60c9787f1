package stream

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// TwoPhaseSink is a sink with transactions tied to checkpoints (Flink's
// TwoPhaseCommitSinkFunction). Records written between two checkpoint barriers belong to a
// pending transaction that becomes visible only when the checkpoint that closes it completes.
//
// The runtime's side of the protocol, per run of a job:
//
//  1. Recover(lastComplete, owns), once, before anything else.
//  2. Each writer instance i writes with WriteBatchFor(i, ...), from its own goroutine, and
//     calls PreCommit(i, n) when the barrier of checkpoint n reaches it, before it
//     acknowledges n. Checkpoint ids increase; they need not be consecutive.
//  3. Once checkpoint n is complete (every instance acknowledged it and the completion is
//     stored), Commit(n), from any goroutine.
//
// What is written after the last completed checkpoint is never committed, Close included:
// at the end of a bounded input the runtime takes a final checkpoint and commits it.
type TwoPhaseSink[T any] interface {
	Sink[T]
	// WriteBatchFor writes recs into the current transaction of writer instance `instance`
	// (≥ 0). Calls for one instance come from one goroutine; calls for different instances
	// may run at once. The sink must not keep recs after it returns.
	WriteBatchFor(instance int, recs []Record[T]) error
	// PreCommit closes the current transaction of writer instance `instance` at checkpoint n
	// (flush, fsync) and opens the next. It is called when the barrier of n reaches the sink,
	// from that instance's goroutine.
	PreCommit(instance int, n int64) error
	// Commit makes visible every transaction pre-committed at checkpoints ≤ n, of all
	// instances (idempotent: committing again is a no-op). Called once n is complete.
	Commit(n int64) error
	// Recover is called at start, before any write: for every writer instance that owns
	// accepts, it commits what belongs to checkpoints ≤ lastComplete (they completed, but a
	// crash may have come before Commit) and discards pending data of later or unfinished
	// transactions; it leaves other instances alone (on a cluster, each node recovers the
	// instances it runs). lastComplete is 0 when there is no checkpoint. Called again after
	// writes began, it is a restart from lastComplete in the same process
	// (actor.RestartStage): the open transactions are abandoned too.
	Recover(lastComplete int64, owns func(instance int) bool) error
}

// TwoPhaseJSONLSink is a two-phase commit sink that writes each record's value as one line of JSON
// (encoding/json, without HTML escaping) into files under dir, which it creates if need be.
// Only committed output is in dir, as files
//
//	dir/part-c<n>-i<i>.jsonl
//
// one per writer instance i and non-empty transaction committed at checkpoint n (n is 10
// digits, i 4, zero-padded, so names sort in commit order). Pending data lives in
// dir/.pending, which a glob of dir/*.jsonl does not see:
//
//	dir/.pending/i<i>-c<n>.inprogress  the open transaction of instance i; n is the next
//	                                   checkpoint expected to close it, for people reading
//	                                   the directory (the checkpoint that does close it may
//	                                   be a later one)
//	dir/.pending/i<i>-c<n>.jsonl       its transaction pre-committed at checkpoint n
//
// The transaction of instance i closed by checkpoint n holds what i wrote after its barrier
// of the checkpoint before (or after Recover) and before the barrier of n. A transaction is
// created with its first record: an empty one leaves no file at all.
//
// PreCommit flushes and fsyncs the open file and renames it to its pre-committed name. Commit(n)
// renames every pre-committed file of a checkpoint ≤ n into dir (a rename within one
// filesystem is atomic, so a reader sees a whole file or none) and fsyncs both directories.
// Recover(lastComplete) finishes what a crash interrupted: pre-committed files of
// checkpoints ≤ lastComplete are committed, those of later checkpoints and every .inprogress
// file are removed. And since a recovery may fall back to an older checkpoint than the
// latest one that committed (when the latest turns out corrupt), committed part files of
// checkpoints > lastComplete are moved to dir/.retracted (replacing a file of the same name
// there), out of the output: the replay from lastComplete writes their records again. Files whose names do not follow
// these patterns are left alone.
//
// WriteBatch, which has no instance, returns an error: records of different instances must
// not share a transaction, since each instance closes its own at its own barrier.
//
// A failed write or pre-commit (a full disk, say) breaks the instance's open transaction:
// that instance refuses writes and pre-commits from then on, so its checkpoints fail and the
// job must recover from the last complete one; committed data is not touched. A batch with a
// value that does not encode writes nothing and breaks nothing.
//
// Close flushes and fsyncs each open transaction into its .inprogress file and closes it, but
// commits nothing; Commit may still be called after Close (a final checkpoint completing).
//
// The sink is safe for concurrent use as the protocol of TwoPhaseSink describes. One sink,
// in one process, may use dir at a time.
func TwoPhaseJSONLSink[T any](dir string) (TwoPhaseSink[T], error) {
	s := &twoPhaseJSONL[T]{
		dir:       dir,
		pending:   filepath.Join(dir, pendingDirName),
		retracted: filepath.Join(dir, retractedDirName),
		instances: make(map[int]*txnWriter),
	}
	if err := os.MkdirAll(s.pending, 0o755); err != nil {
		return nil, fmt.Errorf("two-phase jsonl sink: create %s: %w", s.pending, err)
	}
	return s, nil
}

const (
	pendingDirName   = ".pending"
	retractedDirName = ".retracted"
	inProgressExt    = ".inprogress"
)

type twoPhaseJSONL[T any] struct {
	dir, pending, retracted string

	// mu guards recovered, lastComplete, closed, instances and precommitted. It is not held
	// while an instance writes; it is held by Commit and Recover throughout.
	mu           sync.Mutex
	recovered    bool
	lastComplete int64
	closed       bool
	instances    map[int]*txnWriter
	// precommitted lists the pre-committed files not yet committed.
	precommitted []txnFile
}

// txnFile is a pre-committed transaction: instance i's, closed by checkpoint n.
type txnFile struct {
	instance int
	n        int64
}

// txnWriter is the state of one writer instance.
type txnWriter struct {
	id int

	// mu guards the fields below. The instance's goroutine is the only writer, but Close may
	// come from another.
	mu sync.Mutex
	// f is the open transaction's file, nil before its first record; w buffers it.
	f    *os.File
	w    *bufio.Writer
	path string
	// lastN is the last checkpoint this instance pre-committed, or the sink's lastComplete.
	lastN int64
	// broken is the error that broke the instance's open transaction, if one did.
	broken error
	closed bool
	buf    bytes.Buffer
	enc    *json.Encoder
}

func pendingName(instance int, n int64) string {
	return fmt.Sprintf("i%d-c%d.jsonl", instance, n)
}

func committedName(n int64, instance int) string {
	return fmt.Sprintf("part-c%010d-i%04d.jsonl", n, instance)
}

// parseTxnName reads "<prefix><a><sep><b><ext>" with a and b non-negative decimal numbers.
// The caller checks that the name is the canonical one for a and b.
func parseTxnName(name, prefix, sep, ext string) (a, b int64, ok bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, 0, false
	}
	if rest, ok = strings.CutSuffix(rest, ext); !ok {
		return 0, 0, false
	}
	as, bs, ok := strings.Cut(rest, sep)
	if !ok {
		return 0, 0, false
	}
	a, errA := strconv.ParseInt(as, 10, 64)
	b, errB := strconv.ParseInt(bs, 10, 64)
	if errA != nil || errB != nil || a < 0 || b < 0 {
		return 0, 0, false
	}
	return a, b, true
}

func (s *twoPhaseJSONL[T]) WriteBatch([]Record[T]) error {
	return errors.New("two-phase jsonl sink: WriteBatch has no writer instance; use WriteBatchFor")
}

// instance returns the writer of instance i, created on first use.
func (s *twoPhaseJSONL[T]) instance(i int, op string) (*txnWriter, error) {
	if i < 0 {
		return nil, fmt.Errorf("two-phase jsonl sink %s: %s: negative instance %d", s.dir, op, i)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.recovered:
		return nil, fmt.Errorf("two-phase jsonl sink %s: %s before Recover", s.dir, op)
	case s.closed:
		return nil, fmt.Errorf("two-phase jsonl sink %s: %s after Close", s.dir, op)
	}
	w := s.instances[i]
	if w == nil {
		w = &txnWriter{id: i, lastN: s.lastComplete}
		w.enc = json.NewEncoder(&w.buf)
		w.enc.SetEscapeHTML(false)
		s.instances[i] = w
	}
	return w, nil
}

func (s *twoPhaseJSONL[T]) WriteBatchFor(instance int, recs []Record[T]) error {
	w, err := s.instance(instance, "write")
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(s.dir); err != nil {
		return err
	}
	defer func() {
		w.buf.Reset()
		if w.buf.Cap() > maxKeptBuffer {
			w.buf = bytes.Buffer{}
			w.enc = json.NewEncoder(&w.buf)
			w.enc.SetEscapeHTML(false)
		}
	}()
	for i := range recs {
		if err := w.enc.Encode(recs[i].Value); err != nil {
			return fmt.Errorf("two-phase jsonl sink %s: instance %d: encode record %d of %d (nothing of the batch written): %w", s.dir, instance, i, len(recs), err)
		}
	}
	if w.buf.Len() == 0 {
		return nil
	}
	if w.f == nil {
		path := filepath.Join(s.pending, fmt.Sprintf("i%d-c%d%s", instance, w.lastN+1, inProgressExt))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return w.breakTxn(fmt.Errorf("two-phase jsonl sink: open transaction file: %w", err))
		}
		w.f, w.path = f, path
		if w.w == nil {
			w.w = bufio.NewWriterSize(f, 64<<10)
		} else {
			w.w.Reset(f)
		}
	}
	if _, err := w.w.Write(w.buf.Bytes()); err != nil {
		return w.breakTxn(fmt.Errorf("two-phase jsonl sink: write %s: %w", w.path, err))
	}
	return nil
}

// usable says why the instance cannot write or pre-commit, if it cannot.
func (w *txnWriter) usable(dir string) error {
	switch {
	case w.closed:
		return fmt.Errorf("two-phase jsonl sink %s: instance %d: closed", dir, w.id)
	case w.broken != nil:
		return fmt.Errorf("two-phase jsonl sink %s: instance %d: an earlier failure broke its transaction (recover from the last complete checkpoint): %w", dir, w.id, w.broken)
	}
	return nil
}

// breakTxn marks the open transaction broken by err, closes its file (which stays, for
// Recover to remove) and returns err.
func (w *txnWriter) breakTxn(err error) error {
	w.broken = err
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	return err
}

// abandon closes the open transaction's file unflushed (Recover removes it) and refuses
// writes from then on.
func (w *txnWriter) abandon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}

// flushFile flushes and fsyncs the open file and closes it.
func (w *txnWriter) flushFile() error {
	f := w.f
	w.f = nil
	if err := w.w.Flush(); err != nil {
		_ = f.Close()
		return fmt.Errorf("flush %s: %w", w.path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("fsync %s: %w", w.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", w.path, err)
	}
	return nil
}

func (s *twoPhaseJSONL[T]) PreCommit(instance int, n int64) error {
	w, err := s.instance(instance, "pre-commit")
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(s.dir); err != nil {
		return err
	}
	if n <= w.lastN {
		return fmt.Errorf("two-phase jsonl sink %s: instance %d: pre-commit at checkpoint %d, not after %d", s.dir, instance, n, w.lastN)
	}
	if w.f == nil {
		// An empty transaction: nothing to keep.
		w.lastN = n
		return nil
	}
	if err := w.flushFile(); err != nil {
		return w.breakTxn(fmt.Errorf("two-phase jsonl sink: pre-commit at checkpoint %d: %w", n, err))
	}
	to := filepath.Join(s.pending, pendingName(instance, n))
	if err := os.Rename(w.path, to); err != nil {
		return w.breakTxn(fmt.Errorf("two-phase jsonl sink: pre-commit at checkpoint %d: %w", n, err))
	}
	if err := syncDir(s.pending); err != nil {
		// The rename may or may not survive a crash: Recover sorts it out either way, but
		// the checkpoint must not count on it.
		return w.breakTxn(fmt.Errorf("two-phase jsonl sink: pre-commit at checkpoint %d: %w", n, err))
	}
	w.lastN = n
	s.addPrecommitted(txnFile{instance, n})
	return nil
}

func (s *twoPhaseJSONL[T]) addPrecommitted(t txnFile) {
	s.mu.Lock()
	s.precommitted = append(s.precommitted, t)
	s.mu.Unlock()
}

func (s *twoPhaseJSONL[T]) Commit(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recovered {
		return fmt.Errorf("two-phase jsonl sink %s: commit before Recover", s.dir)
	}
	var due []txnFile
	s.precommitted = slices.DeleteFunc(s.precommitted, func(t txnFile) bool {
		if t.n <= n {
			due = append(due, t)
			return true
		}
		return false
	})
	if len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, func(a, b txnFile) int {
		return cmp.Or(cmp.Compare(a.n, b.n), cmp.Compare(a.instance, b.instance))
	})
	for i, t := range due {
		if err := s.commitFile(t.instance, t.n); err != nil {
			// Keep what is left for a later Commit (or Recover).
			s.precommitted = append(s.precommitted, due[i:]...)
			return fmt.Errorf("two-phase jsonl sink: commit checkpoint %d: %w", n, err)
		}
	}
	if err := s.syncDirs(); err != nil {
		return fmt.Errorf("two-phase jsonl sink: commit checkpoint %d: %w", n, err)
	}
	return nil
}

// commitFile renames instance's file pre-committed at n into the output directory. It does not
// replace a file already there.
func (s *twoPhaseJSONL[T]) commitFile(instance int, n int64) error {
	from := filepath.Join(s.pending, pendingName(instance, n))
	to := filepath.Join(s.dir, committedName(n, instance))
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("commit %s: %s already exists", from, to)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit %s: %w", from, err)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("commit %s: %w", from, err)
	}
	return nil
}

func (s *twoPhaseJSONL[T]) syncDirs() error {
	if err := syncDir(s.dir); err != nil {
		return err
	}
	return syncDir(s.pending)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("close directory %s: %w", dir, err)
	}
	return nil
}

// Recover recovers the writer instances owns accepts: the files of other instances are left
// alone. In a cluster each node recovers the instances it runs, so that two nodes never
// commit, discard or retract one file.
func (s *twoPhaseJSONL[T]) Recover(lastComplete int64, owns func(instance int) bool) error {
	if lastComplete < 0 {
		return fmt.Errorf("two-phase jsonl sink %s: recover: negative checkpoint %d", s.dir, lastComplete)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("two-phase jsonl sink %s: recover after Close", s.dir)
	}
	// A recover after writes began is a restart in the same process (ErrorPolicy
	// RestartStage): the open transactions are abandoned, and the files are sorted out below
	// as after a crash.
	for i, w := range s.instances {
		if owns(i) {
			w.abandon()
			delete(s.instances, i)
		}
	}
	s.precommitted = slices.DeleteFunc(s.precommitted, func(t txnFile) bool { return owns(t.instance) })

	entries, err := os.ReadDir(s.pending)
	if err != nil {
		return fmt.Errorf("two-phase jsonl sink: recover: %w", err)
	}
	var commit []txnFile
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasSuffix(name, inProgressExt) {
			if i, _, ok := parseTxnName(name, "i", "-c", inProgressExt); !ok || i > math.MaxInt32 || !owns(int(i)) {
				continue
			}
			if err := os.Remove(filepath.Join(s.pending, name)); err != nil {
				return fmt.Errorf("two-phase jsonl sink: recover: discard unfinished transaction: %w", err)
			}
			continue
		}
		i, n, ok := parseTxnName(name, "i", "-c", ".jsonl")
		if !ok || i > math.MaxInt32 || name != pendingName(int(i), n) || !owns(int(i)) {
			continue
		}
		if n > lastComplete {
			if err := os.Remove(filepath.Join(s.pending, name)); err != nil {
				return fmt.Errorf("two-phase jsonl sink: recover: discard transaction of incomplete checkpoint %d: %w", n, err)
			}
			continue
		}
		commit = append(commit, txnFile{instance: int(i), n: n})
	}
	for _, t := range commit {
		if err := s.commitFile(t.instance, t.n); err != nil {
			return fmt.Errorf("two-phase jsonl sink: recover to checkpoint %d: %w", lastComplete, err)
		}
	}

	// Committed output of checkpoints after lastComplete: a recovery that fell back.
	entries, err = os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("two-phase jsonl sink: recover: %w", err)
	}
	for _, e := range entries {
		n, i, ok := parseTxnName(e.Name(), "part-c", "-i", ".jsonl")
		if !ok || n <= lastComplete || i > math.MaxInt32 || e.Name() != committedName(n, int(i)) || !e.Type().IsRegular() || !owns(int(i)) {
			continue
		}
		if err := os.MkdirAll(s.retracted, 0o755); err != nil {
			return fmt.Errorf("two-phase jsonl sink: recover: %w", err)
		}
		from := filepath.Join(s.dir, e.Name())
		if err := os.Rename(from, filepath.Join(s.retracted, e.Name())); err != nil {
			return fmt.Errorf("two-phase jsonl sink: recover: retract %s of checkpoint %d > %d: %w", from, n, lastComplete, err)
		}
	}
	if err := s.syncDirs(); err != nil {
		return fmt.Errorf("two-phase jsonl sink: recover: %w", err)
	}
	s.recovered, s.lastComplete = true, lastComplete
	return nil
}

// Close flushes and fsyncs every open transaction into its .inprogress file, uncommitted, and
// closes it. A second Close does nothing.
func (s *twoPhaseJSONL[T]) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ws := make([]*txnWriter, 0, len(s.instances))
	for _, w := range s.instances {
		ws = append(ws, w)
	}
	s.mu.Unlock()

	var errs []error
	for _, w := range ws {
		w.mu.Lock()
		w.closed = true
		if w.f != nil {
			if err := w.flushFile(); err != nil {
				errs = append(errs, fmt.Errorf("two-phase jsonl sink: close instance %d: %w", w.id, err))
			}
		}
		w.mu.Unlock()
	}
	return errors.Join(errs...)
}
