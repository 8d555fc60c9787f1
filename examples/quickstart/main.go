// Command quickstart is a first Eddy job that needs nothing outside the process: it
// generates click events, counts them per user on the engine, and prints a leaderboard.
//
//	go run ./examples/quickstart -events 200000 -parallelism 4
//	go run ./examples/quickstart -events 5000000 -rate 500000 -admin 127.0.0.1:9090   # then: go run ./cmd/eddytop
//
// The job is
//
//	clicks (stream.Generate, -parallelism splits)
//	  → KeyBy(user)            re-partitioned to key groups; Click crosses with a JSON codec
//	  → Count                  a running count per user, sent on per input batch (compacted)
//	  → leaderboard (a sink)   keeps every user's latest count
//
// The program prints the job's topology as a Mermaid flowchart, runs it, then prints the
// top 10 users with their counts, the total number of events counted, and the counters of
// every stage (records in and out, batches, time spent waiting for credit).
//
// The clicks are deterministic: event i always has the same user, page and time, whatever
// the parallelism, and users are skewed (a few users make most of the clicks), so the
// leaderboard is the same on every run.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/stream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		os.Exit(2) // the flag package has printed the problem and the usage
	default:
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line, already reported by the flag package.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

const (
	// users is how many distinct users click.
	users = 50
	// pages is how many distinct pages they click on.
	pages = 20
	// epochMillis is the time of the first click: 2024-01-01T00:00:00Z.
	epochMillis = 1_704_067_200_000
	// topN is how many users the leaderboard prints.
	topN = 10
)

// Click is one click of a user on a page at a time (Unix milliseconds).
type Click struct {
	User string `json:"user"`
	Page string `json:"page"`
	At   int64  `json:"at"`
}

var userNames, pageNames = names("user-%02d", users), names("/page/%d", pages)

func names(format string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf(format, i)
	}
	return s
}

// mix is SplitMix64's finaliser: a cheap, well-spread hash of i, so that click(i) is a
// pure function of i and the source's splits can generate their ranges independently.
func mix(i uint64) uint64 {
	z := i + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// click returns event i. The user is skewed: with x uniform in [0, 1), user ⌊users·x³⌋ is
// user-00 for a fifth of the clicks and user-49 for well under 1%. Clicks are 5 ms apart.
func click(i int64) Click {
	h := mix(uint64(i))
	x := float64(h>>11) / (1 << 53)
	u := min(int(users*x*x*x), users-1)
	p := mix(h) % pages
	return Click{User: userNames[u], Page: pageNames[p], At: epochMillis + 5*i}
}

// paced returns gen slowed down to rate calls per second over all the goroutines that call
// it: call n waits until n/rate seconds after the first. It sleeps only when more than a
// few milliseconds ahead, so a high rate costs few sleeps.
func paced(gen func(int64) Click, rate float64) func(int64) Click {
	var (
		calls atomic.Int64
		start = time.Now()
	)
	return func(i int64) Click {
		due := start.Add(time.Duration(float64(calls.Add(1)) / rate * float64(time.Second)))
		if ahead := time.Until(due); ahead > 2*time.Millisecond {
			time.Sleep(ahead)
		}
		return gen(i)
	}
}

// announceAdmin prints the admin endpoint's address to stderr once the job serves it (with
// -admin 127.0.0.1:0 the port is known only then). stop ends the wait.
func announceAdmin(job *graph.Job, stderr io.Writer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if addr := job.AdminAddr(); addr != nil {
				fmt.Fprintf(stderr, "quickstart: admin endpoint on http://%s (watch it: go run ./cmd/eddytop -admin %s)\n", addr, addr)
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// UserCount is one row of the leaderboard.
type UserCount struct {
	User  string
	Count int64
}

// leaderboard is a sink of running counts: it keeps the latest count of every user. The
// counts of one user all come from the actor of its key group, in order, so the latest to
// arrive is the highest.
type leaderboard struct {
	// mu guards latest and updates.
	mu      sync.Mutex
	latest  map[string]int64
	updates int64
}

func newLeaderboard() *leaderboard { return &leaderboard{latest: map[string]int64{}} }

func (l *leaderboard) WriteBatch(recs []stream.Record[stream.KV[string, int64]]) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		l.latest[r.Value.Key] = r.Value.Value
	}
	l.updates += int64(len(recs))
	return nil
}

func (l *leaderboard) Close() error { return nil }

// ranking returns every user's count, highest first, ties by name; the updates received;
// and the sum of the counts.
func (l *leaderboard) ranking() (rows []UserCount, updates, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for u, n := range l.latest {
		rows = append(rows, UserCount{u, n})
		total += n
	}
	sortRanking(rows)
	return rows, l.updates, total
}

func sortRanking(rows []UserCount) {
	slices.SortFunc(rows, func(a, b UserCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.User, b.User)
	})
}

// run parses args (the flags), runs the job and prints to stdout; the engine logs its
// warnings and errors to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	events := fs.Int64("events", 200_000, "number of click events to generate")
	parallelism := fs.Int("parallelism", runtime.GOMAXPROCS(0), "splits the source is generated with")
	rate := fs.Float64("rate", 0, "events per second to generate at, over all splits (0: as fast as it goes)")
	var report runreport.Flags
	report.Register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "quickstart: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *events < 0 {
		return fmt.Errorf("-events %d: want 0 or more", *events)
	}
	if *parallelism < 1 {
		return fmt.Errorf("-parallelism %d: want at least 1", *parallelism)
	}
	if *rate < 0 {
		return fmt.Errorf("-rate %v: want 0 or more", *rate)
	}
	gen := click
	if *rate > 0 {
		gen = paced(click, *rate)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	g := graph.New("quickstart")
	clicks := graph.From(g, stream.Generate(*events, gen), graph.Name("clicks"))
	perUser := graph.KeyBy(clicks, func(c Click) string { return c.User }, graph.WithCodec(stream.JSON[Click]()))
	counts := graph.Count(perUser, graph.Name("clicks-per-user"))
	board := newLeaderboard()
	counts.To(board, graph.Name("leaderboard"))

	job, err := g.Build(append(report.Options(), graph.Parallelism(*parallelism), graph.Logger(logger))...)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, job.Describe().Mermaid()); err != nil {
		return fmt.Errorf("print topology: %w", err)
	}
	if report.Admin != "" {
		stop := announceAdmin(job, stderr)
		defer stop()
	}
	// Progress on stderr when it is a terminal; the account of the run on stdout, last.
	var summary strings.Builder
	if err := runreport.Run(ctx, job, stderr, &summary); err != nil {
		return fmt.Errorf("run %s: %w (%s)", g.Name(), err, strings.TrimSpace(summary.String()))
	}
	defer fmt.Fprint(stdout, "\n"+summary.String())

	rows, updates, total := board.ranking()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "top %d of %d users\n", min(topN, len(rows)), len(rows))
	fmt.Fprintln(tw, "rank\tuser\tclicks\tshare")
	for i, r := range rows[:min(topN, len(rows))] {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.1f%%\n", i+1, r.User, r.Count, 100*float64(r.Count)/float64(max(total, 1)))
	}
	fmt.Fprintf(tw, "\ntotal events: %d (%d count updates reached the leaderboard)\n", total, updates)
	fmt.Fprintln(tw, "\nstage\tinstances\tin\tout\tdead letters\tbatches sent\tbackpressure")
	for _, s := range job.Stats() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Stage, s.Instances, s.In, s.Out, s.DeadLetters, s.Batches, s.Backpressure)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print results: %w", err)
	}
	return nil
}
