package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddyflow/eddy/internal/keycount"
)

// The promise: kill the process at any instant, start it again, and the committed output is
// as if it had never died. The binary runs on 200,000 records, is SIGKILLed at random moments
// at least five times, is started again each time with the same flags, and at the end the
// committed output holds every (key, seq) for seq = 1..count(key) exactly once. Runs
// alternate between the memory and the Badger state backends.
func TestKilledAndRestartedExactlyOnce(t *testing.T) { killAndRestart(t, nil) }

// The same in micro-batch mode: batches of 2,000 records per split, each committed by its
// checkpoint.
func TestKilledAndRestartedMicroBatch(t *testing.T) {
	killAndRestart(t, []string{"-micro-batch", "20ms", "-micro-batch-records", "2000"})
}

// killAndRestart kills the program at random moments, five times, restarts it with the same
// flags (plus extra), and checks the committed output.
func killAndRestart(t *testing.T, extra []string) {
	const n, keys = 200_000, 97
	rng := rand.New(rand.NewPCG(42, 7))
	bin, in, out, state, want := setup(t, n, func(int) string { return fmt.Sprintf("key-%d", rng.IntN(keys)) })
	args := append([]string{"-in", in, "-out", out, "-state", state, "-checkpoint", "50ms", "-rate", "40000"}, extra...)

	kills, finished := 0, false
	for run := 0; run < 40 && !finished; run++ {
		// Every other run keeps its counts in Badger: a kill leaves Badger ahead of the
		// checkpoint, and a restart on either backend must start from the checkpoint.
		backend := []string{"memory", "badger"}[run%2]
		cmd := exec.Command(bin, append(args, "-backend", backend)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if kills < 5 {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run %d failed: %v\n%s", run, err, stderr.String())
				}
				finished = true
			case <-time.After(time.Duration(150+rng.IntN(550)) * time.Millisecond):
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-done
				kills++
			}
			continue
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the last run failed: %v\n%s", err, stderr.String())
			}
			finished = true
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatal("the last run did not finish within 2 minutes")
		}
	}
	if kills < 5 || !finished {
		t.Fatalf("%d kills, finished %v: the test did not do what it says", kills, finished)
	}

	files, lines := checkOutput(t, out, want)
	t.Logf("%d kills, %d files, %d lines", kills, files, lines)
}

// checkOutput checks that out holds every (key, seq) for seq = 1..want[key] exactly once, and
// nothing else; it returns how many files and lines.
func checkOutput(t *testing.T, out string, want map[string]int) (int, int) {
	t.Helper()
	files, lines, err := keycount.Check(out, want)
	if err != nil {
		t.Error(err)
	}
	return files, lines
}

// A corrupt newest checkpoint is reported and skipped: the run starts from the one before,
// two-phase output committed after that one is taken back, and the output is still exact.
func TestCorruptCheckpointFallsBack(t *testing.T) {
	const n = 100_000
	bin, in, out, state, want := setup(t, n, func(i int) string { return fmt.Sprintf("key-%d", (i*7919)%53) })
	args := []string{"-in", in, "-out", out, "-state", state, "-checkpoint", "50ms", "-rate", "40000"}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once two checkpoints are complete (polled, so that a slow machine only makes
	// the test slower): the newest is then corrupted and the one before must be used.
	var cps []string
	for deadline := time.Now().Add(time.Minute); len(cps) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		cps, _ = filepath.Glob(filepath.Join(state, "checkpoints", "chk-*"))
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	cps, _ = filepath.Glob(filepath.Join(state, "checkpoints", "chk-*"))
	if len(cps) < 2 {
		t.Fatalf("%d checkpoints after the first run (in a minute); the test needs two", len(cps))
	}
	newest := cps[len(cps)-1]
	data, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xFF
	if err := os.WriteFile(newest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	last := exec.Command(bin, args...)
	last.Stderr = &stderr
	if err := last.Run(); err != nil {
		t.Fatalf("the run after the corruption failed: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "corrupt checkpoint skipped") || !strings.Contains(stderr.String(), filepath.Base(newest)) {
		t.Errorf("the corruption of %s was not reported; stderr:\n%s", filepath.Base(newest), stderr.String())
	}
	checkOutput(t, out, want)
}

// Rescaling: a run at parallelism 2 is killed, the next starts at 4 from its checkpoint and
// is killed too, the last finishes at 1; the output is still exact.
func TestRescaleAcrossRestarts(t *testing.T) {
	const n = 60_000
	bin, in, out, state, want := setup(t, n, func(i int) string { return fmt.Sprintf("key-%d", (i*31)%41) })
	args := func(p int) []string {
		return []string{"-in", in, "-out", out, "-state", state, "-checkpoint", "50ms", "-rate", "40000", "-parallelism", fmt.Sprint(p)}
	}
	for _, p := range []int{2, 4} {
		cmd := exec.Command(bin, args(p)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // a process to kill, not an event-time test
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	var stderr strings.Builder
	last := exec.Command(bin, args(1)...)
	last.Stderr = &stderr
	if err := last.Run(); err != nil {
		t.Fatalf("the run at parallelism 1 failed: %v\n%s", err, stderr.String())
	}
	checkOutput(t, out, want)
}

// setup builds the binary and writes an input of n records whose keys key(i) gives; it
// returns the binary, the input, the output and state directories, and the count per key.
func setup(t *testing.T, n int, key func(i int) string) (bin, in, out, state string, want map[string]int) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "exactlyonce")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	in = filepath.Join(dir, "in.jsonl")
	want = map[string]int{}
	var b strings.Builder
	for i := range n {
		k := key(i)
		want[k]++
		fmt.Fprintf(&b, "{\"key\":%q}\n", k)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin, in, filepath.Join(dir, "out"), filepath.Join(dir, "state"), want
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-in", "x"},
		{"-in", "x", "-out", "o", "-state", "s", "-checkpoint", "0s"},
		{"-in", "x", "-out", "o", "-state", "s", "-rate", "-1"},
		{"-in", "x", "-out", "o", "-state", "s", "-parallelism", "0"},
		{"-in", "x", "-out", "o", "-state", "s", "-backend", "rocksdb"},
	} {
		if err := run(t.Context(), args, &strings.Builder{}); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
