package runreport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// panicky builds a job over a file of numbers whose Map panics on the lines "bad".
func panicky(t *testing.T, path string, opts ...graph.JobOption) (*graph.Job, *[]stream.DeadLetter) {
	t.Helper()
	var mu sync.Mutex
	var dead []stream.DeadLetter
	g := graph.New("panicky")
	lines := graph.From(g, stream.Lines(path), graph.Name("lines"))
	lengths := graph.Map(lines, func(s string) int64 {
		if s == "bad" {
			panic("a bad line")
		}
		return int64(len(s))
	}, graph.Name("length"))
	lengths.To(stream.NewCollectSink[int64](), graph.Name("out"))
	opts = append(opts, graph.DeadLetters(func(d stream.DeadLetter) {
		mu.Lock()
		defer mu.Unlock()
		dead = append(dead, d)
	}))
	job, err := g.Build(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return job, &dead
}

func writeFile(t *testing.T) (path string, badLines []int64) {
	var b strings.Builder
	for i := int64(1); i <= 100; i++ {
		if i%10 == 3 {
			b.WriteString("bad\n")
			badLines = append(badLines, i)
			continue
		}
		fmt.Fprintf(&b, "line %d\n", i)
	}
	path = filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, badLines
}

// A Map that panics on some lines of a file: the run goes on, the summary counts them, and
// each dead letter names file:line.
func TestPanicsBecomeDeadLettersWithTheirLine(t *testing.T) {
	path, bad := writeFile(t)
	job, dead := panicky(t, path)
	if err := job.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v (a dead letter must not fail the job without a limit)", err)
	}
	var lines []int64
	for _, d := range *dead {
		if d.Source != path || !strings.Contains(d.Reason, "a bad line") {
			t.Errorf("dead letter %+v; want source %s and the panic", d, path)
		}
		if want := fmt.Sprintf("%s:%d:", path, d.Position); !strings.Contains(d.String(), want) {
			t.Errorf("dead letter %q does not name %s", d.String(), want)
		}
		lines = append(lines, d.Position)
	}
	slices.Sort(lines)
	if !slices.Equal(lines, bad) {
		t.Errorf("dead letters at lines %v, want %v", lines, bad)
	}
	want := fmt.Sprintf("panicky: 100 records in, %d out, %d dead letters, 0 late, 0 checkpoints (0 failed)", 100-len(bad), len(bad))
	if got := Summary(job); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

// With a limit below the count, the job fails, naming the limit.
func TestMaxDeadLetters(t *testing.T) {
	path, bad := writeFile(t)
	for _, tc := range []struct {
		limit int64
		fails bool
	}{
		{0, false},
		{int64(len(bad)), false},
		{int64(len(bad)) - 1, true},
		{1, true},
	} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			job, _ := panicky(t, path, graph.MaxDeadLetters(tc.limit))
			err := job.Run(context.Background())
			if !tc.fails {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			if !errors.Is(err, actor.ErrTooManyDeadLetters) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d", tc.limit)) {
				t.Errorf("Run: %v; want too many dead letters, naming the limit %d", err, tc.limit)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	path, _ := writeFile(t)
	job, _ := panicky(t, path)
	var buf bytes.Buffer
	if stop := Progress(&buf, job, time.Millisecond); stop != nil {
		time.Sleep(20 * time.Millisecond)
		stop()
	}
	if buf.Len() != 0 {
		t.Errorf("progress on a buffer, not a terminal: %q", buf.String())
	}
	var mu sync.Mutex
	var lines []string
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, string(p))
		return len(p), nil
	})
	stop := progress(w, job, 2*time.Millisecond)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a line or two after the end
	stop()
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], "100 in, 90 out") {
		t.Errorf("progress lines %q; want the last to count 100 in, 90 out", lines)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
