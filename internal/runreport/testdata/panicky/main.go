// Command panicky is the test program of runreport's acceptance test: a job over a file
// whose Map panics on the lines "bad". Each dead letter is a line on stderr; the summary
// follows; a failure is a last line and exit status 1.
//
//	panicky [-max-dead-letters N] FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/stream"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "panicky:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("panicky", flag.ContinueOnError)
	var report runreport.Flags
	report.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: panicky [-max-dead-letters N] FILE")
	}
	var mu sync.Mutex
	g := graph.New("panicky")
	lines := graph.From(g, stream.Lines(fs.Arg(0)), graph.Name("lines"))
	graph.Map(lines, func(s string) int {
		if s == "bad" {
			panic("a bad line")
		}
		return len(s)
	}, graph.Name("length")).To(stream.NewCollectSink[int](), graph.Name("out"))
	opts := append(report.Options(), graph.Logger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		graph.DeadLetters(func(d stream.DeadLetter) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(stderr, "dead letter:", d)
		}))
	job, err := g.Build(opts...)
	if err != nil {
		return err
	}
	return runreport.Run(context.Background(), job, stderr, nil)
}
