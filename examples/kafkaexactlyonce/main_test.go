package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The contract under SIGKILL: 200,000 input records over 4 partitions (half of them
// produced while the job is being killed), the binary SIGKILLed at random moments at least
// ten times and started again with the same flags each time, then left to finish. A
// read_committed consumer of the output sees every (key, seq) for seq = 1..count(key)
// exactly once, and nothing else. The broker is examples/kafkabroker (kfake) in a process of
// its own: it outlives the killed job, as a real cluster would.
func TestKilledAndRestartedExactlyOnce(t *testing.T) {
	const n, keys, kills = 200_000, 97, 10
	bin := build(t)
	_, brokers := newBroker(t)
	rng := rand.New(rand.NewPCG(16, 4))
	keyOf := make([]string, n)
	want := map[string]int{}
	for i := range keyOf {
		keyOf[i] = fmt.Sprintf("key-%d", rng.IntN(keys))
		want[keyOf[i]]++
	}
	// A fifth of the input is there at the start; the rest comes while the job is killed
	// and restarted, about 25,000 records a second, so that every run has work to do.
	produce(t, brokers, "in", 0, n/5, keyOf)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for from := n / 5; from < n; from += 1000 {
			produce(t, brokers, "in", from, min(from+1000, n), keyOf)
			time.Sleep(40 * time.Millisecond) // a pace for the producer, not a wait for a result
		}
	}()
	t.Cleanup(func() { <-produced }) // before the broker stops, even when the test fails early
	state := t.TempDir()
	args := []string{"-brokers", brokers, "-in", "in", "-out", "out", "-state", state, "-checkpoint", "100ms", "-idle-exit", "1s"}

	killed, commits, aborts := 0, 0, 0
	for run := 0; ; run++ {
		if killed >= kills && isClosed(produced) {
			break
		}
		cmd, done, stderr := start(t, bin, args)
		select {
		case err := <-done:
			t.Fatalf("run %d ended before it was killed: %v\n%s", run, err, stderr)
		case <-time.After(time.Duration(200+rng.IntN(900)) * time.Millisecond):
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-done
			killed++
			commits += strings.Count(stderr.String(), "committed the transaction of a complete checkpoint")
			aborts += strings.Count(stderr.String(), "aborted a transaction")
		}
	}
	_, done, stderr := start(t, bin, args)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the last run failed: %v\n%s", err, stderr)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the last run did not finish within 90s\n%s", stderr)
	}
	commits += strings.Count(stderr.String(), "committed the transaction of a complete checkpoint")
	aborts += strings.Count(stderr.String(), "aborted a transaction")
	// Killed mid-transaction, a run leaves one open for the next to abort: if no run ever
	// did, the kills did not land while the job was writing.
	if aborts == 0 {
		t.Errorf("no run aborted a transaction a killed run left open; the kills missed the work\n%s", stderr)
	}
	t.Logf("%d kills; recoveries committed %d and aborted %d transactions left open", killed, commits, aborts)
	checkOutput(t, brokers, "out", want)
}

// A malformed input value is a dead letter with its partition:offset; the job goes on and
// the output of the good records is exact.
func TestMalformedInputIsADeadLetter(t *testing.T) {
	bin := build(t)
	_, brokers := newBroker(t)
	keyOf := make([]string, 1000)
	want := map[string]int{}
	for i := range keyOf {
		keyOf[i] = fmt.Sprintf("k%d", i%5)
		want[keyOf[i]]++
	}
	produce(t, brokers, "in", 0, 500, keyOf)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	res := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Partition: 0, Key: []byte("bad"), Value: []byte("{not json")})
	cl.Close()
	bad, err := res.First()
	if err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, "in", 500, 1000, keyOf)
	_, done, stderr := start(t, bin, []string{"-brokers", brokers, "-in", "in", "-out", "out", "-state", t.TempDir(), "-checkpoint", "100ms", "-idle-exit", "500ms"})
	if err := <-done; err != nil {
		t.Fatalf("run failed: %v\n%s", err, stderr)
	}
	pos := fmt.Sprintf("in/%d:%d", bad.Partition, bad.Offset)
	if !strings.Contains(stderr.String(), "dead letter") || !strings.Contains(stderr.String(), pos) {
		t.Errorf("no dead letter at %s in the log:\n%s", pos, stderr)
	}
	if !strings.Contains(stderr.String(), "dead_letters=1") {
		t.Errorf("the final count does not say one dead letter:\n%s", stderr)
	}
	checkOutput(t, brokers, "out", want)
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-brokers", "b", "-in", "i", "-out", "o"},
		{"-brokers", "b", "-in", "i", "-out", "o", "-state", "s", "-checkpoint", "0s"},
		{"-brokers", "b", "-in", "i", "-out", "o", "-state", "s", "-idle-exit", "-1s"},
		{"-brokers", "b", "-in", "x", "-out", "x", "-state", "s"},
	} {
		if err := run(t.Context(), args, &strings.Builder{}); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kafkaexactlyonce")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	return bin
}

// newBroker starts examples/kafkabroker (kfake in its own process, so that the race
// detector of this test does not slow the broker down) with topics in and out of 4
// partitions, and returns its address once it accepts connections.
func newBroker(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kafkabroker")
	if b, err := exec.Command("go", "build", "-o", bin, "../kafkabroker").CombinedOutput(); err != nil {
		t.Fatalf("build kafkabroker: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-topics", "in:4,out:4")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		t.Fatalf("kafkabroker said %q, %v; want \"listening on ADDR\"", line, err)
	}
	return cmd, addr
}

func start(t *testing.T, bin string, args []string) (*exec.Cmd, chan error, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done, &stderr
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// produce writes records from..to-1 of the input, {"key":K} keyed by K = keyOf[i]. It may
// run on another goroutine than the test's.
func produce(t *testing.T, brokers, topic string, from, to int, keyOf []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	ctx := context.Background()
	for i := from; i < to; i++ {
		k := keyOf[i]
		cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: fmt.Appendf(nil, `{"key":%q}`, k)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Error(err)
	}
}

// checkOutput reads all of topic with a read_committed consumer and checks that it holds
// every (key, seq) for seq = 1..want[key] exactly once, keyed by key, and nothing else.
func checkOutput(t *testing.T, brokers, topic string, want map[string]int) {
	t.Helper()
	total := 0
	for _, c := range want {
		total += c
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[Output]int{}
	read := 0
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		wait := 2 * time.Second
		if read >= total {
			wait = 500 * time.Millisecond // anything beyond the expected count?
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			var o Output
			if err := json.Unmarshal(r.Value, &o); err != nil {
				t.Errorf("output %q: %v", r.Value, err)
			} else if string(r.Key) != o.Key {
				t.Errorf("output %q has Kafka key %q", r.Value, r.Key)
			}
			seen[o]++
			got++
		})
		read += got
		if got == 0 && read >= total {
			break
		}
	}
	bad := 0
	for k, c := range want {
		for s := 1; s <= c; s++ {
			if got := seen[Output{k, int64(s)}]; got != 1 {
				if bad++; bad <= 10 {
					t.Errorf("key %s seq %d read %d times", k, s, got)
				}
			}
		}
	}
	if read != total {
		t.Errorf("read %d committed output records, want %d", read, total)
	}
	t.Logf("%d committed output records checked", read)
}
