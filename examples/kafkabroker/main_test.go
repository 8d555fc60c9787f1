package main

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseTopics(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []topicSpec
		bad  bool
	}{
		{in: "", want: nil},
		{in: "a:1", want: []topicSpec{{"a", 1}}},
		{in: "a:4, b:2", want: []topicSpec{{"a", 4}, {"b", 2}}},
		{in: "a", bad: true},
		{in: "a:0", bad: true},
		{in: ":3", bad: true},
		{in: "a:x", bad: true},
		{in: "a:1,a:2", bad: true},
	} {
		got, err := parseTopics(tt.in)
		if (err != nil) != tt.bad {
			t.Errorf("parseTopics(%q) error %v, want error %v", tt.in, err, tt.bad)
			continue
		}
		if !tt.bad && !equal(got, tt.want) {
			t.Errorf("parseTopics(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func equal(a, b []topicSpec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The contract: one line "listening on ADDR" once it accepts connections, the topics exist
// with their partitions, and SIGTERM stops it with status 0.
func TestBrokerProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kafkabroker")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-topics", "clicks:3,counts:2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read the first line: %v (stderr: %s)", err, stderr.String())
	}
	addr, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "listening on ")
	if !ok || strings.HasSuffix(addr, ":0") {
		t.Fatalf("first line %q, want \"listening on ADDR\" with the port it got", line)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, "clicks", "counts")
	if err != nil {
		t.Fatal(err)
	}
	for topic, parts := range map[string]int{"clicks": 3, "counts": 2} {
		if got := len(md.Topics[topic].Partitions); got != parts {
			t.Errorf("topic %s has %d partitions, want %d", topic, got, parts)
		}
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "clicks", Value: []byte("x")}).FirstErr(); err != nil {
		t.Errorf("produce: %v", err)
	}
	cl.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v (stderr: %s)", err, stderr.String())
	}
	if len(rest) > 0 {
		t.Errorf("more than one line on stdout: %q", rest)
	}
}
