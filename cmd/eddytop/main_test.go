package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// terminal is a tmux server of its own (its own socket), with one session.
type terminal struct {
	t       *testing.T
	socket  string
	session string
}

func (term *terminal) tmux(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-L", term.socket}, args...)...).CombinedOutput()
	return string(out), err
}

func (term *terminal) capture() string {
	out, err := term.tmux("capture-pane", "-p", "-t", term.session)
	if err != nil {
		term.t.Fatalf("capture-pane: %v: %s", err, out)
	}
	return out
}

func (term *terminal) keys(keys ...string) {
	if out, err := term.tmux(append([]string{"send-keys", "-t", term.session}, keys...)...); err != nil {
		term.t.Fatalf("send-keys %v: %v: %s", keys, err, out)
	}
}

// waitFor captures the screen until ok accepts it, or fails after d.
func (term *terminal) waitFor(what string, d time.Duration, ok func(screen string) bool) string {
	term.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := term.capture()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("after %v the screen does not show %s:\n%s", d, what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rateOf returns the in/s figure of stage's row.
func rateOf(screen, stage string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(stage) + `\s+\d+\s+(\S+)`).FindStringSubmatch(screen)
	if m == nil {
		return ""
	}
	return m[1]
}

// The acceptance test: eddytop in a real terminal (tmux) against a real job.
func TestEddytopInTmux(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed (.ci/install-tui.sh installs it)")
		}
		t.Skip("tmux is not installed: apt-get install -y tmux")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "eddytop")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build eddytop: %v\n%s", err, out)
	}

	// The job: about 8 s of numbers at 20,000/s, counted per key.
	const events, rate = 160_000, 20_000.0
	var calls atomic.Int64
	start := time.Now()
	paced := func(i int64) int64 {
		due := start.Add(time.Duration(float64(calls.Add(1)) / rate * float64(time.Second)))
		if ahead := time.Until(due); ahead > 2*time.Millisecond {
			time.Sleep(ahead)
		}
		return i
	}
	g := graph.New("watched")
	src := graph.From(g, stream.Generate(events, paced), graph.Name("numbers"))
	evens := src.Filter(func(i int64) bool { return i%2 == 0 }, graph.Name("evens"))
	counts := graph.Count(graph.KeyBy(evens, func(i int64) string { return fmt.Sprintf("key-%d", i%20) }), graph.Name("per-key"))
	counts.To(stream.NewCollectSink[stream.KV[string, int64]](), graph.Name("counted"))
	job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(8), graph.Admin("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for job.AdminAddr() == nil {
		select {
		case err := <-done:
			t.Fatalf("the job ended before its endpoint was up: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}

	term := &terminal{t: t, socket: fmt.Sprintf("eddytop-test-%d", os.Getpid()), session: "eddytop"}
	exitFile := filepath.Join(dir, "exit")
	shell := fmt.Sprintf("%s -admin %s -interval 300ms; echo $? > %s; sleep 30", bin, job.AdminAddr(), exitFile)
	if out, err := term.tmux("new-session", "-d", "-s", term.session, "-x", "160", "-y", "48", shell); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	defer term.tmux("kill-server")

	// Every stage of the job, fused or not, is on the screen.
	screen := term.waitFor("every stage", 10*time.Second, func(s string) bool {
		for _, name := range []string{"numbers", "evens", "per-key", "counted"} {
			if !strings.Contains(s, name) {
				return false
			}
		}
		return strings.Contains(s, "running")
	})
	// The rate moves between two readings.
	first := rateOf(screen, "numbers")
	term.waitFor("a changing rate", 5*time.Second, func(s string) bool {
		r := rateOf(s, "numbers")
		return r != "" && first != "" && r != first
	})
	// Down to the keyed stage, enter: its instances.
	term.keys("Down", "Enter")
	term.waitFor("the instances of per-key", 5*time.Second, func(s string) bool {
		return strings.Contains(s, "stage per-key") && regexp.MustCompile(`(?m)^#0 `).MatchString(s) &&
			regexp.MustCompile(`(?m)^#7 `).MatchString(s)
	})
	term.keys("Escape")
	// The key lookup.
	term.keys("/")
	term.keys("key-4", "Enter")
	term.waitFor("a key's count", 5*time.Second, func(s string) bool {
		return regexp.MustCompile(`per-key\[key-4\] = \d+`).MatchString(s)
	})

	// A smaller window: the screen is drawn again to fit it; what does not fit is cut above
	// the key help, which stays on the last line.
	if out, err := term.tmux("resize-window", "-t", term.session, "-x", "100", "-y", "14"); err != nil {
		t.Fatalf("resize-window: %v: %s", err, out)
	}
	term.waitFor("a redraw for 100×14", 5*time.Second, func(s string) bool {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return strings.HasPrefix(lines[0], "eddytop") && strings.Contains(s, "more lines") &&
			strings.Contains(lines[len(lines)-1], "q: quit")
	})

	if err := <-done; err != nil {
		t.Fatalf("the job: %v", err)
	}
	done <- nil // for the deferred wait
	term.waitFor("the end of the job", 10*time.Second, func(s string) bool {
		return strings.Contains(s, "job ended: finished") && strings.Contains(s, "The job has ended")
	})
	term.keys("q")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(exitFile)
		if err == nil && strings.TrimSpace(string(b)) != "" {
			if code := strings.TrimSpace(string(b)); code != "0" {
				t.Fatalf("eddytop exited with %s", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("eddytop did not exit on q:\n%s", term.capture())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
