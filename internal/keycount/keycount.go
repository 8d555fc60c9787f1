// Package keycount is the exactly-once job of examples/exactlyonce and cmd/eddy: for every
// input line {"key":K} it emits {"key":K,"seq":N}, N being the count of records with key K
// so far, through a two-phase sink.
package keycount

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Input is one input line.
type Input struct {
	Key string `json:"key"`
}

// Output is one output line.
type Output struct {
	Key string `json:"key"`
	Seq int64  `json:"seq"`
}

// Graph returns the job reading JSON lines from in, at most rate records per second (0: no
// limit), and writing to sink.
func Graph(name, in string, rate int, sink stream.Sink[Output]) *graph.Graph {
	return GraphFrom(name, stream.JSONL[Input](in), rate, sink)
}

// GraphFrom returns the job reading src (Generated, say), at most rate records per second
// (0: no limit), and writing to sink.
func GraphFrom(name string, src stream.Source[Input], rate int, sink stream.Sink[Output]) *graph.Graph {
	g := graph.New(name)
	records := graph.From(g, src, graph.Name("input"))
	if rate > 0 {
		records = graph.Map(records, Pace[Input](rate), graph.Name("pace"))
	}
	counts := graph.Count(graph.KeyBy(records, func(i Input) string { return i.Key }, graph.WithCodec(stream.JSON[Input]())),
		graph.Name("count"), graph.Emit(stream.EmitEveryUpdate))
	graph.Map(counts, func(kv stream.KV[string, int64]) Output { return Output{Key: kv.Key, Seq: kv.Value} }, graph.Name("seq")).
		To(sink, graph.Name("output"))
	return g
}

// Pace returns a map that holds records to rate per second: it sleeps whenever it is ahead
// of the schedule by a millisecond or more, so the sleeps are few.
func Pace[T any](rate int) func(T) T {
	start := time.Now()
	var n int64
	per := time.Second / time.Duration(rate)
	return func(v T) T {
		n++
		if ahead := time.Duration(n)*per - time.Since(start); ahead >= time.Millisecond {
			time.Sleep(ahead)
		}
		return v
	}
}

// Check reads the committed output in out (out/*.jsonl) and reports whether it holds every
// (key, seq) for seq = 1..want[key] exactly once and nothing else: nil, or an error naming
// the first problems. It returns how many files and lines it read.
func Check(out string, want map[string]int) (files, lines int, err error) {
	paths, err := filepath.Glob(filepath.Join(out, "*.jsonl"))
	if err != nil {
		return 0, 0, err
	}
	seen := map[Output]int{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return 0, 0, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var o Output
			if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
				f.Close()
				return 0, 0, fmt.Errorf("%s: %q: %w", p, sc.Text(), err)
			}
			seen[o]++
			lines++
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", p, err)
		}
	}
	var problems []string
	total := 0
	for k, c := range want {
		total += c
		for seq := 1; seq <= c; seq++ {
			if got := seen[Output{Key: k, Seq: int64(seq)}]; got != 1 && len(problems) < 10 {
				problems = append(problems, fmt.Sprintf("key %s seq %d committed %d times", k, seq, got))
			}
		}
	}
	if lines != total {
		problems = append(problems, fmt.Sprintf("%d committed lines, want %d", lines, total))
	}
	if len(problems) > 0 {
		return len(paths), lines, errors.New(strings.Join(problems, "; "))
	}
	return len(paths), lines, nil
}
