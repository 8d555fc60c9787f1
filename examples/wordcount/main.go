// Command wordcount counts the words of a text file with Eddy and prints one JSON line
// {"word":W,"count":N} per distinct word on standard output.
//
//	go run ./examples/wordcount [-admin ADDR] [-max-dead-letters N] book.txt
//
// A word is a maximal run of characters for which unicode.IsLetter or unicode.IsNumber
// holds, lowercased with strings.ToLower. Everything else separates words: spaces,
// punctuation, symbols and emoji, combining marks (category M, so "हिन्दी" splits at its
// vowel signs), and bytes that are not valid UTF-8.
//
// The job runs through the engine: the file's lines (stream.Lines) are split into words
// (graph.FlatMap), re-partitioned by word (graph.KeyBy) and counted per word (graph.Count,
// emitting each word's final count once, at the end of the input); a sink collects the
// counts, and the program prints them sorted by count, highest first, then by word.
//
// A missing or unreadable file, or a wrong number of arguments, is a one-line error on
// standard error and exit status 1.
package main

import (
	"bufio"
	"context"
	"encoding/json"
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
	"unicode"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/runreport"
	"github.com/eddyflow/eddy/stream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		// One line, whatever the error: errors.Join puts newlines between errors.
		fmt.Fprintln(os.Stderr, "wordcount:", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

// WordCount is one line of output.
type WordCount struct {
	Word  string `json:"word"`
	Count int64  `json:"count"`
}

// run counts the words of the file named by the only element of args and writes the
// counts to stdout as JSON lines; the engine logs warnings and errors to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wordcount", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var report runreport.Flags
	report.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("want one argument, the file to count the words of; got %d (usage: wordcount FILE, with flags -admin ADDR and -max-dead-letters N before it)", fs.NArg())
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	counts, err := count(ctx, fs.Arg(0), logger, report, stderr)
	if err != nil {
		return err
	}
	return write(stdout, counts)
}

// count runs the job over the file at path and returns the count of every word, in no
// particular order.
func count(ctx context.Context, path string, logger *slog.Logger, report runreport.Flags, stderr io.Writer) ([]WordCount, error) {
	g := graph.New("wordcount")
	lines := graph.From(g, stream.Lines(path), graph.Name("lines"))
	words := graph.FlatMap(lines, splitWords, graph.Name("words"))
	perWord := graph.KeyBy(words, func(w string) string { return w })
	counts := graph.Count(perWord, graph.Name("count"), graph.Emit(stream.EmitAtEnd))

	// The sink keeps the last count it sees per word; with EmitAtEnd that is the only one.
	// stream.FuncSink serialises its calls, but the map is read after the job, so guard it.
	var mu sync.Mutex
	last := map[string]int64{}
	counts.To(stream.FuncSink(func(recs []stream.Record[stream.KV[string, int64]]) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			last[r.Value.Key] = r.Value.Value
		}
		return nil
	}), graph.Name("collect"))

	job, err := g.Build(append(report.Options(),
		graph.Parallelism(max(2, runtime.GOMAXPROCS(0))),
		graph.Logger(logger),
	)...)
	if err != nil {
		return nil, err
	}
	if err := runreport.Run(ctx, job, stderr, nil); err != nil {
		return nil, fmt.Errorf("count words of %s: %w", path, err)
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]WordCount, 0, len(last))
	for w, n := range last {
		out = append(out, WordCount{Word: w, Count: n})
	}
	return out, nil
}

// splitWords emits the words of line, lowercased. Ranging over a string decodes a byte
// that is not valid UTF-8 as utf8.RuneError, which is not a letter, so it splits words;
// the bytes of a word are therefore always valid UTF-8.
func splitWords(line string, emit func(string)) {
	start := -1
	for i, r := range line {
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			emit(strings.ToLower(line[start:i]))
			start = -1
		}
	}
	if start >= 0 {
		emit(strings.ToLower(line[start:]))
	}
}

// write sorts counts (count descending, then word ascending) and writes them to w as JSON
// lines, words as they are (no HTML escaping).
func write(w io.Writer, counts []WordCount) error {
	slices.SortFunc(counts, func(a, b WordCount) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Word, b.Word)
	})
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, c := range counts {
		if err := enc.Encode(c); err != nil {
			return fmt.Errorf("write count of %q: %w", c.Word, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write counts: %w", err)
	}
	return nil
}
