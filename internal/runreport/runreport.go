package runreport

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
)

// Job is what a report reads of a job: *graph.Job.
type Job interface {
	Stats() []actor.StageStats
	Describe() graph.Description
	Checkpoints() actor.CheckpointStats
}

// DefaultInterval is how often Progress writes a line, and how long a job runs before the
// first one.
const DefaultInterval = 3 * time.Second

// Totals are the counts a report shows.
type Totals struct {
	// In counts the records the sources read; Out those the stages that end the graph
	// (the sinks fused into them) took out of it.
	In, Out     int64
	DeadLetters int64
	Late        int64
	// Lag is the highest watermark lag of a stage; HasLag says whether any has one.
	Lag    time.Duration
	HasLag bool
	Ckpt   actor.CheckpointStats
}

// Count adds up the job's counters now.
func Count(job Job) Totals {
	d := job.Describe()
	kind := map[string]string{}
	for _, v := range d.Vertices {
		kind[v.Name] = v.Kind
	}
	feeds := map[string]bool{}
	for _, ch := range d.Channels {
		feeds[ch.From] = true
	}
	var t Totals
	for _, st := range job.Stats() {
		if kind[st.Stage] == "source" {
			t.In += st.In
		}
		if !feeds[st.Stage] {
			t.Out += st.Out
		}
		t.DeadLetters += st.DeadLetters
		t.Late += st.Late
		if st.HasWatermark && st.Watermark != actor.MaxWatermark {
			t.Lag, t.HasLag = max(t.Lag, st.WatermarkLag), true
		}
	}
	t.Ckpt = job.Checkpoints()
	return t
}

// Summary is the one-line account of a run, for the end of it.
func Summary(job Job) string {
	t := Count(job)
	return fmt.Sprintf("%s: %d records in, %d out, %d dead letters, %d late, %d checkpoints (%d failed)",
		job.Describe().Job, t.In, t.Out, t.DeadLetters, t.Late, checkpoints(t.Ckpt), t.Ckpt.Failed)
}

// checkpoints counts the checkpoints taken during the run, the final one included.
func checkpoints(c actor.CheckpointStats) int64 { return c.Completed }

// line is one progress line: t now, against prev read dt before.
func line(elapsed time.Duration, t, prev Totals, dt time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d in, %d out", elapsed.Round(time.Second), t.In, t.Out)
	if dt > 0 {
		fmt.Fprintf(&b, " (%.0f/s in)", float64(t.In-prev.In)/dt.Seconds())
	}
	if t.HasLag {
		fmt.Fprintf(&b, ", watermark lag %s", t.Lag.Round(time.Millisecond))
	}
	if t.DeadLetters > 0 {
		fmt.Fprintf(&b, ", %d dead letters", t.DeadLetters)
	}
	if t.Ckpt.Last > 0 {
		fmt.Fprintf(&b, ", checkpoint %d (%s)", t.Ckpt.Last, t.Ckpt.Duration.Round(time.Millisecond))
	}
	return b.String()
}

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Progress writes a progress line to w every interval (DefaultInterval when 0) while the
// job runs, the first after one interval, when w is a terminal; otherwise it writes
// nothing. stop ends it and waits for it.
func Progress(w io.Writer, job Job, interval time.Duration) (stop func()) {
	if !IsTerminal(w) {
		return func() {}
	}
	return progress(w, job, interval)
}

func progress(w io.Writer, job Job, interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		var prev Totals
		prevAt := time.Time{}
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				t := Count(job)
				var dt time.Duration
				if !prevAt.IsZero() {
					dt = now.Sub(prevAt)
				}
				fmt.Fprintln(w, line(now.Sub(start), t, prev, dt))
				prev, prevAt = t, now
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// Flags are the flags of a program that runs a job: -admin and -max-dead-letters.
type Flags struct {
	Admin          string
	MaxDeadLetters int64
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Admin, "admin", "", "serve the job's admin endpoint (for eddytop) on `ADDR` while it runs, e.g. 127.0.0.1:9090")
	fs.Int64Var(&f.MaxDeadLetters, "max-dead-letters", 0, "fail the job once it has more than `N` dead letters (0: no limit; they are counted and reported)")
}

// Options returns the job options the flags ask for.
func (f Flags) Options() []graph.JobOption {
	var opts []graph.JobOption
	if f.Admin != "" {
		opts = append(opts, graph.Admin(f.Admin))
	}
	if f.MaxDeadLetters > 0 {
		opts = append(opts, graph.MaxDeadLetters(f.MaxDeadLetters))
	}
	return opts
}

// Run runs job with progress lines on stderr (when it is a terminal) and writes the
// summary when it ends, however it ends: to summaryTo, or when summaryTo is nil, to stderr
// when SummaryWanted, so that a clean run's stderr stays empty for the programs that check
// it.
func Run(ctx context.Context, job *graph.Job, stderr, summaryTo io.Writer) error {
	stop := Progress(stderr, job, 0)
	err := job.Run(ctx)
	stop()
	if summaryTo == nil && SummaryWanted(job, stderr, err) {
		summaryTo = stderr
	}
	if summaryTo != nil {
		fmt.Fprintln(summaryTo, Summary(job))
	}
	return err
}

// SummaryWanted reports whether a run has a summary to write on stderr: when it is a
// terminal, or when there is something to account for (dead letters, late records). A
// failure alone is not: the program reports its error, on one line.
func SummaryWanted(job Job, stderr io.Writer, _ error) bool {
	t := Count(job)
	return IsTerminal(stderr) || t.DeadLetters > 0 || t.Late > 0
}
