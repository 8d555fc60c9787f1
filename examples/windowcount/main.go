// Command windowcount counts and sums keyed values in event-time windows with Eddy, as
// Flink would, and prints one JSON line per firing.
//
//	go run ./examples/windowcount -in events.jsonl -window 10s -delay 2s -lateness 5s -late late.jsonl
//
// Input: JSON lines {"key":string,"ts":int milliseconds,"value":number}. Flags:
//
//	-in FILE      the input (required)
//	-window D     tumbling windows of size D; with -slide S, hopping windows of size D every S
//	-session D    session windows with gap D (instead of -window)
//	-lateness D   allowed lateness (default 0)
//	-delay D      out-of-orderness bound of the watermark (default 0)
//	-late FILE    where records too late for all their windows go, as JSON lines
//	              {"key","ts","value"} (default: standard error, as "late: " lines)
//
// Output: one line {"key","start","end","count","sum"} per firing, start and end in ms; a
// re-firing prints a new line with the window's full, updated count and sum. A malformed
// line (not JSON, a wrong type, a missing field) prints "windowcount: line N: reason" on
// standard error, and the run goes on.
//
// Semantics are Flink's, with a punctuated watermark W = (largest ts so far) − delay, moved
// after each record (stream.BoundedOutOfOrderPunctuated); see operator.WindowOperator for the
// rules of lateness, firing, re-firing, session merging and the end of input. The job runs
// through the engine with parallelism of at least 2: a JSONL source, a Timestamps stage,
// KeyBy(key), and a Window stage whose results and late records go to JSON-lines sinks.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/stream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "windowcount:", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		os.Exit(1)
	}
}

// Event is one input line.
type Event struct {
	Key   string  `json:"key"`
	TS    int64   `json:"ts"`
	Value float64 `json:"value"`
}

// UnmarshalJSON decodes an event strictly: an object with a string key, an integer ts and a
// numeric value, all present; other fields are ignored.
func (e *Event) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if fields == nil {
		return errors.New("not a JSON object: null")
	}
	raw := func(name string) (json.RawMessage, error) {
		v, ok := fields[name]
		if !ok {
			return nil, fmt.Errorf("missing field %q", name)
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return nil, fmt.Errorf("field %q is null", name)
		}
		return v, nil
	}
	k, err := raw("key")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(k, &e.Key); err != nil {
		return fmt.Errorf("field \"key\" is not a string: %s", k)
	}
	ts, err := raw("ts")
	if err != nil {
		return err
	}
	if e.TS, err = strconv.ParseInt(string(bytes.TrimSpace(ts)), 10, 64); err != nil {
		return fmt.Errorf("field \"ts\" is not an integer of milliseconds: %s", ts)
	}
	v, err := raw("value")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(v, &e.Value); err != nil {
		return fmt.Errorf("field \"value\" is not a number: %s", v)
	}
	return nil
}

// Firing is one line of output.
type Firing struct {
	Key   string  `json:"key"`
	Start int64   `json:"start"`
	End   int64   `json:"end"`
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
}

// CountSum is the accumulator and result of countSum.
type CountSum struct {
	Count int64
	Sum   float64
}

// countSum counts and sums values; it merges, for sessions.
type countSum struct{}

func (countSum) Zero() CountSum                   { return CountSum{} }
func (countSum) Add(a CountSum, e Event) CountSum { return CountSum{a.Count + 1, a.Sum + e.Value} }
func (countSum) Merge(a, b CountSum) CountSum     { return CountSum{a.Count + b.Count, a.Sum + b.Sum} }
func (countSum) Result(a CountSum) CountSum       { return a }

type config struct {
	in, late               string
	window, slide, session time.Duration
	lateness, delay        time.Duration
	windows                stream.WindowAssigner
	// microBatch > 0 runs the job in micro-batches of at most batchRecords records per
	// split (graph.MicroBatch); the output is the same as in continuous mode.
	microBatch   time.Duration
	batchRecords int
	report       runreport.Flags
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("windowcount", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.in, "in", "", "input `FILE` of JSON lines {\"key\",\"ts\",\"value\"}")
	fs.DurationVar(&c.window, "window", 0, "tumbling window size (with -slide: hopping)")
	fs.DurationVar(&c.slide, "slide", 0, "hopping window slide, with -window")
	fs.DurationVar(&c.session, "session", 0, "session gap, instead of -window")
	fs.DurationVar(&c.lateness, "lateness", 0, "allowed lateness")
	fs.DurationVar(&c.delay, "delay", 0, "out-of-orderness bound of the watermark")
	fs.StringVar(&c.late, "late", "", "`FILE` for late records (default: standard error)")
	fs.DurationVar(&c.microBatch, "micro-batch", 0, "run in micro-batches of this interval (0: continuous)")
	fs.IntVar(&c.batchRecords, "micro-batch-records", 100_000, "with -micro-batch: records a split reads per batch at most")
	c.report.Register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.in == "":
		return c, errors.New("-in FILE is required")
	case c.window == 0 && c.session == 0:
		return c, errors.New("give -window D (tumbling, or hopping with -slide) or -session D")
	case c.window != 0 && c.session != 0:
		return c, errors.New("-window and -session exclude each other")
	case c.slide != 0 && c.window == 0:
		return c, errors.New("-slide needs -window")
	case c.window < 0 || c.session < 0 || c.slide < 0 || c.lateness < 0 || c.delay < 0 || c.microBatch < 0:
		return c, errors.New("durations must not be negative")
	case c.batchRecords < 1:
		return c, fmt.Errorf("-micro-batch-records %d: want at least 1", c.batchRecords)
	}
	switch {
	case c.session != 0:
		c.windows = stream.Session(c.session)
	case c.slide != 0:
		c.windows = stream.Hopping(c.window, c.slide)
	default:
		c.windows = stream.Tumbling(c.window)
	}
	if err := c.windows.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// run parses args (without the program name), runs the job and writes firings to stdout;
// malformed lines, late records (without -late) and the engine's warnings go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var mu sync.Mutex // guards stderr: dead letters come from many actors
	errOut := bufio.NewWriter(stderr)
	defer func() {
		mu.Lock()
		errOut.Flush()
		mu.Unlock()
	}()
	report := func(d stream.DeadLetter) {
		mu.Lock()
		defer mu.Unlock()
		if d.Position > 0 {
			fmt.Fprintf(errOut, "windowcount: line %d: %s\n", d.Position, d.Reason)
			return
		}
		fmt.Fprintf(errOut, "windowcount: %s: %s (%v)\n", d.Stage, d.Reason, d.Value)
	}

	var late stream.Sink[Event] = &lateToStderr{mu: &mu, w: errOut}
	if c.late != "" {
		if late, err = stream.JSONLFileSink[Event](c.late); err != nil {
			return err
		}
	}

	g := graph.New("windowcount")
	events := graph.From(g, stream.JSONL[Event](c.in), graph.Name("events"))
	stamped := graph.Timestamps(events, func(e Event) int64 { return e.TS },
		stream.BoundedOutOfOrderPunctuated[Event](c.delay), graph.Name("timestamps"))
	perKey := graph.KeyBy(stamped, func(e Event) string { return e.Key }, graph.WithCodec(stream.JSON[Event]()))
	windows := graph.Window(perKey, c.windows, countSum{}, graph.Name("windows"), graph.Lateness(c.lateness))
	firings := graph.Map(windows, func(w stream.WindowResult[string, CountSum]) Firing {
		return Firing{Key: w.Key, Start: w.Start, End: w.End, Count: w.Value.Count, Sum: w.Value.Sum}
	}, graph.Name("firings"))
	firings.To(stream.JSONLWriterSink[Firing](stdout), graph.Name("stdout"))
	graph.SideOutput(windows, stream.LateTag[Event](), graph.Name("late")).To(late, graph.Name("late-file"))

	opts := append(c.report.Options(), graph.Parallelism(max(2, runtime.GOMAXPROCS(0))), graph.Logger(logger), graph.DeadLetters(report))
	if c.microBatch > 0 {
		opts = append(opts, graph.MicroBatch(c.microBatch), graph.MicroBatchRecords(c.batchRecords))
	}
	job, err := g.Build(opts...)
	if err != nil {
		return err
	}
	err = runreport.Run(ctx, job, stderr, io.Discard)
	if runreport.SummaryWanted(job, stderr, err) {
		// After the dead letters and late records, in the same buffer.
		fmt.Fprintln(lockedWriter{mu: &mu, w: errOut}, runreport.Summary(job))
	}
	if err != nil {
		return fmt.Errorf("count windows of %s: %w", c.in, err)
	}
	return nil
}

// lockedWriter writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lateToStderr writes late records to standard error when there is no -late file.
type lateToStderr struct {
	mu *sync.Mutex
	w  *bufio.Writer
}

func (l *lateToStderr) WriteBatch(recs []stream.Record[Event]) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		b, err := json.Marshal(r.Value)
		if err != nil {
			return fmt.Errorf("encode late record: %w", err)
		}
		fmt.Fprintf(l.w, "late: %s\n", b)
	}
	return nil
}

func (l *lateToStderr) Close() error { return nil }
