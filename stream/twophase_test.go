package stream

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// allInstances recovers every writer instance, as a job on one node does.
func allInstances(int) bool { return true }

func newTwoPhase(t *testing.T, dir string, lastComplete int64) *twoPhaseJSONL[string] {
	t.Helper()
	s, err := TwoPhaseJSONLSink[string](dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(lastComplete, allInstances); err != nil {
		t.Fatalf("Recover(%d): %v", lastComplete, err)
	}
	return s.(*twoPhaseJSONL[string])
}

func strRecords(vs ...string) []Record[string] {
	recs := make([]Record[string], len(vs))
	for i, v := range vs {
		recs[i] = Record[string]{Value: v}
	}
	return recs
}

// committed returns the values in dir/*.jsonl, sorted, and the names of those files.
func committed(t *testing.T, dir string) (values, files []string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if info, err := os.Stat(p); err != nil || !info.Mode().IsRegular() {
			continue // the blocker of TestTwoPhaseJSONLMidCommit
		}
		files = append(files, filepath.Base(p))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var v string
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s: %q: %v", p, sc.Text(), err)
			}
			values = append(values, v)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	slices.Sort(values)
	return values, files
}

func mustDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// crash abandons s as a killed process would: open files are closed without flushing what
// is buffered, nothing is renamed.
func crash(s *twoPhaseJSONL[string]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.instances {
		w.mu.Lock()
		if w.f != nil {
			_ = w.f.Close()
			w.f = nil
		}
		w.closed = true
		w.mu.Unlock()
	}
	s.closed = true
}

func TestTwoPhaseJSONLCommit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	s := newTwoPhase(t, dir, 0)
	mustDo(t, "write", s.WriteBatchFor(0, strRecords("a", "<b&c>")))
	mustDo(t, "write", s.WriteBatchFor(2, strRecords("d")))
	mustDo(t, "write", s.WriteBatchFor(1, nil))
	if vs, _ := committed(t, dir); vs != nil {
		t.Fatalf("visible before pre-commit: %q", vs)
	}
	for i := range 3 {
		mustDo(t, "pre-commit", s.PreCommit(i, 1))
	}
	mustDo(t, "write", s.WriteBatchFor(0, strRecords("e")))
	if vs, _ := committed(t, dir); vs != nil {
		t.Fatalf("visible before commit: %q", vs)
	}
	mustDo(t, "commit", s.Commit(1))
	vs, files := committed(t, dir)
	if want := []string{"<b&c>", "a", "d"}; !slices.Equal(vs, want) {
		t.Errorf("after Commit(1): %q, want %q", vs, want)
	}
	// Instance 1 wrote nothing: no file.
	if want := []string{committedName(1, 0), committedName(1, 2)}; !slices.Equal(files, want) {
		t.Errorf("files %q, want %q", files, want)
	}
	// No HTML escaping.
	raw, err := os.ReadFile(filepath.Join(dir, committedName(1, 0)))
	mustDo(t, "read", err)
	if string(raw) != "\"a\"\n\"<b&c>\"\n" {
		t.Errorf("file content %q", raw)
	}
	// Idempotent, and lower checkpoints commit nothing more.
	mustDo(t, "commit again", s.Commit(1))
	mustDo(t, "commit 0", s.Commit(0))
	if again, _ := committed(t, dir); !slices.Equal(again, vs) {
		t.Errorf("after committing again: %q", again)
	}

	// Checkpoint numbers may skip; a commit takes every pre-commit up to it.
	mustDo(t, "write", s.WriteBatchFor(1, strRecords("f")))
	mustDo(t, "pre-commit", s.PreCommit(0, 3))
	mustDo(t, "pre-commit", s.PreCommit(1, 3))
	mustDo(t, "write", s.WriteBatchFor(1, strRecords("g")))
	mustDo(t, "pre-commit", s.PreCommit(1, 5))
	mustDo(t, "pre-commit", s.PreCommit(0, 5))
	mustDo(t, "pre-commit", s.PreCommit(2, 5))
	mustDo(t, "commit", s.Commit(5))
	if vs, _ := committed(t, dir); !slices.Equal(vs, []string{"<b&c>", "a", "d", "e", "f", "g"}) {
		t.Errorf("after Commit(5): %q", vs)
	}
	mustDo(t, "close", s.Close())
	mustDo(t, "close again", s.Close())
	if entries, _ := os.ReadDir(s.pending); len(entries) != 0 {
		t.Errorf("pending files left: %v", entries)
	}
}

func TestTwoPhaseJSONLProtocolErrors(t *testing.T) {
	dir := t.TempDir()
	raw, err := TwoPhaseJSONLSink[float64](dir)
	mustDo(t, "new", err)
	if err := raw.WriteBatchFor(0, []Record[float64]{{Value: 1}}); err == nil {
		t.Error("write before Recover: no error")
	}
	if err := raw.Recover(-1, allInstances); err == nil {
		t.Error("Recover(-1): no error")
	}
	mustDo(t, "recover", raw.Recover(2, allInstances))
	mustDo(t, "recover again before writes", raw.Recover(2, allInstances))
	if err := raw.WriteBatch([]Record[float64]{{Value: 1}}); err == nil || !strings.Contains(err.Error(), "WriteBatchFor") {
		t.Errorf("WriteBatch: %v", err)
	}
	if err := raw.WriteBatchFor(-1, nil); err == nil {
		t.Error("negative instance: no error")
	}
	// A value that does not encode: nothing of the batch written, nothing broken.
	if err := raw.WriteBatchFor(0, []Record[float64]{{Value: 1}, {Value: math.NaN()}}); err == nil {
		t.Error("NaN: no error")
	}
	mustDo(t, "write", raw.WriteBatchFor(0, []Record[float64]{{Value: 2}}))
	if err := raw.PreCommit(0, 2); err == nil {
		t.Error("pre-commit at the last complete checkpoint: no error")
	}
	mustDo(t, "pre-commit", raw.PreCommit(0, 3))
	if err := raw.PreCommit(0, 3); err == nil {
		t.Error("pre-commit twice at 3: no error")
	}
	mustDo(t, "commit", raw.Commit(3))
	b, err := os.ReadFile(filepath.Join(dir, committedName(3, 0)))
	mustDo(t, "read", err)
	if string(b) != "2\n" {
		t.Errorf("committed %q, want only the good batch", b)
	}
	// Recover after writes is a restart from that checkpoint in the same process: what was
	// pre-committed after it, and the open transaction, are dropped.
	mustDo(t, "write", raw.WriteBatchFor(0, []Record[float64]{{Value: 5}}))
	mustDo(t, "pre-commit", raw.PreCommit(0, 4))
	mustDo(t, "write", raw.WriteBatchFor(0, []Record[float64]{{Value: 6}}))
	mustDo(t, "recover after writes (a restart from 3)", raw.Recover(3, allInstances))
	mustDo(t, "commit the dropped checkpoint", raw.Commit(4))
	if _, err := os.Stat(filepath.Join(dir, committedName(4, 0))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the transaction pre-committed before the restart was committed (stat: %v)", err)
	}
	mustDo(t, "write after the restart", raw.WriteBatchFor(0, []Record[float64]{{Value: 7}}))
	mustDo(t, "pre-commit after the restart", raw.PreCommit(0, 4))
	mustDo(t, "commit after the restart", raw.Commit(4))
	b, err = os.ReadFile(filepath.Join(dir, committedName(4, 0)))
	mustDo(t, "read", err)
	if string(b) != "7\n" {
		t.Errorf("committed %q after the restart, want only what was written after it", b)
	}
	mustDo(t, "close", raw.Close())
	if err := raw.WriteBatchFor(0, []Record[float64]{{Value: 1}}); err == nil {
		t.Error("write after Close: no error")
	}
	if err := raw.PreCommit(0, 5); err == nil {
		t.Error("pre-commit after Close: no error")
	}
	if err := raw.Recover(4, allInstances); err == nil {
		t.Error("Recover after Close: no error")
	}
}

// op is a step of a run of the protocol.
type op struct {
	kind     string // write, precommit, complete, commit
	instance int
	n        int64
	value    string
}

// protocolRun is three instances through three checkpoints, barriers reaching the instances
// at different times: some records of instance 0 are written after its barrier and before the
// others'.
func protocolRun() []op {
	var ops []op
	seq := map[int]int{}
	w := func(i int) {
		seq[i]++
		ops = append(ops, op{kind: "write", instance: i, value: fmt.Sprintf("i%d-%d", i, seq[i])})
	}
	for n := int64(1); n <= 3; n++ {
		w(0)
		w(1)
		w(0)
		ops = append(ops, op{kind: "precommit", instance: 0, n: n})
		w(2)
		w(0) // instance 0's next transaction
		w(1)
		ops = append(ops, op{kind: "precommit", instance: 1, n: n})
		if n != 2 {
			w(2)
		}
		ops = append(ops, op{kind: "precommit", instance: 2, n: n})
		w(1)
		ops = append(ops, op{kind: "complete", n: n}, op{kind: "commit", n: n})
	}
	w(2) // after the last checkpoint: never committed in this run
	return ops
}

// closing returns, for every write of ops, the checkpoint that closes its transaction, or
// math.MaxInt64 for none.
func closing(ops []op) map[string]int64 {
	c := map[string]int64{}
	for i, o := range ops {
		if o.kind != "write" {
			continue
		}
		c[o.value] = math.MaxInt64
		for _, later := range ops[i+1:] {
			if later.kind == "precommit" && later.instance == o.instance {
				c[o.value] = later.n
				break
			}
		}
	}
	return c
}

func apply(t *testing.T, s *twoPhaseJSONL[string], o op) {
	t.Helper()
	switch o.kind {
	case "write":
		mustDo(t, "write", s.WriteBatchFor(o.instance, strRecords(o.value)))
	case "precommit":
		mustDo(t, "pre-commit", s.PreCommit(o.instance, o.n))
	case "commit":
		mustDo(t, "commit", s.Commit(o.n))
	}
}

// TestTwoPhaseJSONLCrashAtEveryStep kills the sink after every step of a run, recovers it to
// the last completed checkpoint, replays what the sources would replay, and checks that the
// output holds every record exactly once: after Recover, exactly the records of completed
// checkpoints.
func TestTwoPhaseJSONLCrashAtEveryStep(t *testing.T) {
	ops := protocolRun()
	closedBy := closing(ops)
	for step := 0; step <= len(ops); step++ {
		dir := t.TempDir()
		s := newTwoPhase(t, dir, 0)
		var last int64
		for _, o := range ops[:step] {
			apply(t, s, o)
			if o.kind == "complete" {
				last = o.n
			}
		}
		crash(s)

		r := newTwoPhase(t, dir, last)
		var want, all []string
		for _, o := range ops {
			if o.kind != "write" {
				continue
			}
			all = append(all, o.value)
			if closedBy[o.value] <= last {
				want = append(want, o.value)
			}
		}
		slices.Sort(want)
		slices.Sort(all)
		if got, _ := committed(t, dir); !slices.Equal(got, want) {
			t.Fatalf("crash after step %d, recovered to %d: committed %q, want %q", step, last, got, want)
		}
		if entries, _ := os.ReadDir(r.pending); len(entries) != 0 {
			t.Errorf("step %d: pending files left after Recover: %v", step, entries)
		}

		// Replay: every record not in a completed checkpoint, then one more checkpoint.
		for _, o := range ops {
			if o.kind == "write" && closedBy[o.value] > last {
				apply(t, r, o)
			}
		}
		for i := range 3 {
			mustDo(t, "pre-commit", r.PreCommit(i, last+1))
		}
		mustDo(t, "commit", r.Commit(last+1))
		if got, _ := committed(t, dir); !slices.Equal(got, all) {
			t.Fatalf("crash after step %d: after the replay committed %q, want %q", step, got, all)
		}
		mustDo(t, "close", r.Close())
	}
}

// TestTwoPhaseJSONLMidCommit: a commit that stops after renaming some files (a crash, or a
// failure) is finished by a retry or by Recover.
func TestTwoPhaseJSONLMidCommit(t *testing.T) {
	for _, finish := range []string{"retry", "recover"} {
		t.Run(finish, func(t *testing.T) {
			dir := t.TempDir()
			s := newTwoPhase(t, dir, 0)
			for i := range 3 {
				mustDo(t, "write", s.WriteBatchFor(i, strRecords(fmt.Sprintf("i%d", i))))
				mustDo(t, "pre-commit", s.PreCommit(i, 1))
			}
			// Something in the way of instance 1's file: the commit stops there.
			blocker := filepath.Join(dir, committedName(1, 1))
			mustDo(t, "mkdir", os.Mkdir(blocker, 0o755))
			err := s.Commit(1)
			if err == nil || !strings.Contains(err.Error(), pendingName(1, 1)) {
				t.Fatalf("Commit with a blocked file: %v", err)
			}
			if got, _ := committed(t, dir); !slices.Equal(got, []string{"i0"}) {
				t.Fatalf("after the failed commit: %q", got)
			}
			mustDo(t, "remove blocker", os.Remove(blocker))
			if finish == "retry" {
				mustDo(t, "commit again", s.Commit(1))
			} else {
				crash(s)
				newTwoPhase(t, dir, 1)
			}
			if got, _ := committed(t, dir); !slices.Equal(got, []string{"i0", "i1", "i2"}) {
				t.Errorf("finished by %s: %q", finish, got)
			}
		})
	}
}

// TestTwoPhaseJSONLFailedWrite: a write that fails under the sink fails the pre-commit, breaks
// that instance's transaction and leaves committed data as it was.
func TestTwoPhaseJSONLFailedWrite(t *testing.T) {
	// Each breaker breaks the sink under instance 0 and returns how to mend what the next
	// run needs (nil: nothing).
	breakers := map[string]func(t *testing.T, s *twoPhaseJSONL[string]) (mend func()){
		"file closed under it": func(t *testing.T, s *twoPhaseJSONL[string]) func() {
			_ = s.instances[0].f.Close()
			return nil
		},
		"rename target in the way": func(t *testing.T, s *twoPhaseJSONL[string]) func() {
			in := filepath.Join(s.pending, pendingName(0, 2))
			mustDo(t, "mkdir", os.MkdirAll(filepath.Join(in, "x"), 0o755))
			return nil
		},
		"pending directory gone": func(t *testing.T, s *twoPhaseJSONL[string]) func() {
			// Permissions would not stop root; a file where the directory was stops anyone.
			mustDo(t, "move", os.Rename(s.pending, s.pending+".moved"))
			mustDo(t, "replace", os.WriteFile(s.pending, nil, 0o644))
			return func() {
				mustDo(t, "remove", os.Remove(s.pending))
				mustDo(t, "move back", os.Rename(s.pending+".moved", s.pending))
			}
		},
	}
	for name, breakIt := range breakers {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := newTwoPhase(t, dir, 0)
			mustDo(t, "write", s.WriteBatchFor(0, strRecords("a")))
			mustDo(t, "write", s.WriteBatchFor(1, strRecords("b")))
			mustDo(t, "pre-commit", s.PreCommit(0, 1))
			mustDo(t, "pre-commit", s.PreCommit(1, 1))
			mustDo(t, "commit", s.Commit(1))
			before, files := committed(t, dir)

			mustDo(t, "write", s.WriteBatchFor(0, strRecords("c")))
			mustDo(t, "write", s.WriteBatchFor(1, strRecords("d")))
			mend := breakIt(t, s)
			err := s.PreCommit(0, 2)
			if err == nil {
				t.Fatal("PreCommit after the failure: no error")
			}
			if !strings.Contains(err.Error(), "i0-c") {
				t.Errorf("the error does not name the file: %v", err)
			}
			if err := s.WriteBatchFor(0, strRecords("e")); err == nil {
				t.Error("write to a broken instance: no error")
			}
			if err := s.PreCommit(0, 3); err == nil {
				t.Error("pre-commit of a broken instance: no error")
			}
			after, filesAfter := committed(t, dir)
			if !slices.Equal(after, before) || !slices.Equal(filesAfter, files) {
				t.Errorf("committed data changed: %q in %q, was %q in %q", after, filesAfter, before, files)
			}

			// Checkpoint 2 cannot complete; the job recovers from 1.
			crash(s)
			if mend != nil {
				mend()
			}
			newTwoPhase(t, dir, 1)
			if got, _ := committed(t, dir); !slices.Equal(got, before) {
				t.Errorf("after Recover(1): %q, want %q", got, before)
			}
		})
	}
}

// TestTwoPhaseJSONLRecoverFallsBack: output committed at checkpoints after the one recovered
// to is moved out of the output, since the replay writes it again.
func TestTwoPhaseJSONLRecoverFallsBack(t *testing.T) {
	dir := t.TempDir()
	s := newTwoPhase(t, dir, 0)
	for n := int64(1); n <= 2; n++ {
		mustDo(t, "write", s.WriteBatchFor(0, strRecords(fmt.Sprint(n))))
		mustDo(t, "pre-commit", s.PreCommit(0, n))
		mustDo(t, "commit", s.Commit(n))
	}
	mustDo(t, "close", s.Close())
	// Files that are not the sink's stay.
	mustDo(t, "write other", os.WriteFile(filepath.Join(dir, "part-c7-i0.jsonl"), []byte("\"x\"\n"), 0o644))
	mustDo(t, "write other", os.WriteFile(filepath.Join(dir, ".pending", "notes.txt"), []byte("x"), 0o644))

	newTwoPhase(t, dir, 1)
	if got, _ := committed(t, dir); !slices.Equal(got, []string{"1", "x"}) {
		t.Errorf("after Recover(1): %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ".retracted", committedName(2, 0))); err != nil {
		t.Errorf("retracted file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".pending", "notes.txt")); err != nil {
		t.Errorf("foreign pending file: %v", err)
	}
}

// TestTwoPhaseJSONLClose: Close leaves the open transaction uncommitted, on disk; Commit after
// Close still commits what was pre-committed; Recover discards the rest.
func TestTwoPhaseJSONLClose(t *testing.T) {
	dir := t.TempDir()
	s := newTwoPhase(t, dir, 0)
	mustDo(t, "write", s.WriteBatchFor(0, strRecords("a")))
	mustDo(t, "pre-commit", s.PreCommit(0, 1))
	mustDo(t, "write", s.WriteBatchFor(0, strRecords("b")))
	mustDo(t, "close", s.Close())
	open := filepath.Join(s.pending, "i0-c2"+inProgressExt)
	if b, err := os.ReadFile(open); err != nil || string(b) != "\"b\"\n" {
		t.Errorf("open transaction after Close: %q, %v", b, err)
	}
	mustDo(t, "commit after close", s.Commit(1))
	newTwoPhase(t, dir, 1)
	if got, _ := committed(t, dir); !slices.Equal(got, []string{"a"}) {
		t.Errorf("committed %q", got)
	}
	if _, err := os.Stat(open); !os.IsNotExist(err) {
		t.Errorf("open transaction after Recover: %v", err)
	}
}

// TestTwoPhaseJSONLConcurrent runs writer instances on their own goroutines while checkpoints
// complete and commit behind them.
func TestTwoPhaseJSONLConcurrent(t *testing.T) {
	const instances, checkpoints, batches, batchSize = 4, 5, 6, 10
	dir := t.TempDir()
	s := newTwoPhase(t, dir, 0)
	acks := make(chan int64, instances*checkpoints)
	var wg sync.WaitGroup
	errs := make(chan error, instances)
	for i := range instances {
		wg.Go(func() {
			for n := int64(1); n <= checkpoints; n++ {
				for b := range batches {
					vs := make([]string, batchSize)
					for k := range vs {
						vs[k] = fmt.Sprintf("i%d-c%d-b%d-%d", i, n, b, k)
					}
					if err := s.WriteBatchFor(i, strRecords(vs...)); err != nil {
						errs <- err
						return
					}
				}
				if err := s.PreCommit(i, n); err != nil {
					errs <- err
					return
				}
				acks <- n
			}
		})
	}
	count := map[int64]int{}
	for range instances * checkpoints {
		n := <-acks
		count[n]++
		if count[n] == instances {
			mustDo(t, "commit", s.Commit(n))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustDo(t, "close", s.Close())
	got, files := committed(t, dir)
	if len(got) != instances*checkpoints*batches*batchSize || len(files) != instances*checkpoints {
		t.Fatalf("%d values in %d files", len(got), len(files))
	}
	if len(slices.Compact(got)) != len(got) {
		t.Error("a value committed twice")
	}
}

// On a cluster each node recovers only the writer instances it runs: the files of the
// others stay as they are until their own node recovers them.
func TestTwoPhaseJSONLRecoverInstances(t *testing.T) {
	dir := t.TempDir()
	s := newTwoPhase(t, dir, 0)
	for i, v := range []string{"a", "b"} {
		if err := s.WriteBatchFor(i, strRecords(v)); err != nil {
			t.Fatal(err)
		}
		if err := s.PreCommit(i, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteBatchFor(i, strRecords(v+"-later")); err != nil { // in progress at the crash
			t.Fatal(err)
		}
	}
	// The crash: checkpoint 1 completed, nobody committed it.
	recoverOnly := func(instance int) {
		t.Helper()
		r, err := TwoPhaseJSONLSink[string](dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Recover(1, func(i int) bool { return i == instance }); err != nil {
			t.Fatal(err)
		}
	}
	recoverOnly(0)
	if got, _ := committed(t, dir); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after recovering instance 0: committed %q, want [a]", got)
	}
	pending, _ := filepath.Glob(filepath.Join(dir, ".pending", "i1-*"))
	if len(pending) != 2 {
		t.Fatalf("instance 1's files %q: want its pre-committed and its in-progress one untouched", pending)
	}
	recoverOnly(1)
	if got, _ := committed(t, dir); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after recovering instance 1: committed %q, want [a b]", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".pending", "*")); len(left) != 0 {
		t.Errorf("pending files left after both recovered: %q", left)
	}
}
