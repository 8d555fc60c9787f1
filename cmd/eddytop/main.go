// Command eddytop watches a running Eddy job in the terminal: its topology, the rates and
// back-pressure of its stages and their instances, its checkpoints, its nodes, and the
// state of a key, read from the job's admin endpoint (graph.Admin, or cmd/eddy -admin).
//
//	eddytop [-admin 127.0.0.1:9090] [-interval 1s]
//
// Keys: ↑/↓ select a stage, enter shows its instances, esc goes back, tab changes page,
// / looks up a key in the selected (keyed) stage, q quits. When the job ends or the
// address stops answering, the screen says so and keeps trying.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/eddyflow/eddy/tui"
)

func main() {
	err := run(os.Args[1:], os.Stderr)
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "eddytop:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "eddytop:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("eddytop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", "127.0.0.1:9090", "address of the job's admin endpoint")
	interval := fs.Duration("interval", time.Second, "how often to read the endpoint")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *interval < 100*time.Millisecond {
		return usageError{fmt.Errorf("-interval %v: want at least 100ms", *interval)}
	}
	app := tui.NewApp(tui.NewClient(*addr), *interval)
	_, err := tea.NewProgram(app, tea.WithAltScreen(), tea.WithContext(context.Background())).Run()
	if err != nil {
		return fmt.Errorf("run the screen: %w", err)
	}
	return nil
}

// usageError is a bad command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
