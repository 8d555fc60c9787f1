// Command score scores JSON lines with an ONNX model through Eddy's inference stage.
//
//	score -model model.onnx -in requests.jsonl -out scores.jsonl -batch 64 -max-delay 5ms -concurrency 4
//
// Input: one JSON object per line, {"id":"<string>","features":[<numbers>]}. The model's
// first input takes float32 [batch, len(features)]; its first output is float32 [batch, m].
// Output: one line {"id":"<id>","output":[<m numbers>]} per valid input line, in input
// order.
//
// A line is valid only if it is a JSON object whose "id" is a string and whose "features"
// is an array of JSON numbers (no null, strings or booleans) of exactly the model's input
// width. Every other line, blank lines included, is a dead letter: reported on stderr as
// "line N: reason" (1-based), and counted in a last stderr line "dead letters: N". So is a
// line whose numbers do not fit float32 (±Inf after conversion) or whose scores are not
// finite (JSON has no Inf or NaN). The exit status is 0 whatever the input; 1 is for a model
// or file that cannot be opened, 2 for bad flags.
//
// -batch is the most rows in one call to the model, -concurrency the calls in flight, and
// -max-delay the longest a record waits for its batch to fill (the linger of the exchange
// in front of the stage, which sends a batch of batch×concurrency records when full).
//
//go:generate go run ./internal/genmodel testdata/linear8x3.onnx
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/onnxrt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// config is what the flags say.
type config struct {
	model, in, out string
	batch          int
	maxDelay       time.Duration
	concurrency    int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.model, "model", "", "the ONNX model `FILE`")
	fs.StringVar(&c.in, "in", "", "the input `FILE` of JSON lines {\"id\":...,\"features\":[...]}")
	fs.StringVar(&c.out, "out", "", "the output `FILE` of JSON lines {\"id\":...,\"output\":[...]}")
	fs.IntVar(&c.batch, "batch", 64, "the most rows in one call to the model")
	fs.DurationVar(&c.maxDelay, "max-delay", 5*time.Millisecond, "the longest a record waits for its batch to fill")
	fs.IntVar(&c.concurrency, "concurrency", 4, "calls to the model in flight")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.model == "" || c.in == "" || c.out == "":
		return c, errors.New("-model, -in and -out are required")
	case c.batch < 1:
		return c, fmt.Errorf("-batch %d: want at least 1", c.batch)
	case c.concurrency < 1:
		return c, fmt.Errorf("-concurrency %d: want at least 1", c.concurrency)
	case c.maxDelay < 0:
		return c, fmt.Errorf("-max-delay %v: want at least 0", c.maxDelay)
	}
	return c, nil
}

// run is the program, with its exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "score:", err)
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	model, err := onnxrt.Open(c.model)
	if err != nil {
		fmt.Fprintln(stderr, "score:", err)
		return 1
	}
	defer model.Close()
	dead, err := score(ctx, c, model, log)
	if err != nil {
		fmt.Fprintln(stderr, "score:", err)
		return 1
	}
	for _, d := range dead {
		fmt.Fprintf(stderr, "line %d: %s\n", d.line, d.reason)
	}
	fmt.Fprintf(stderr, "dead letters: %d\n", len(dead))
	return 0
}

// request is a valid input line.
type request struct {
	Line     int64
	ID       string
	Features []float32
}

// result is an output line.
type result struct {
	ID     string    `json:"id"`
	Output []float32 `json:"output"`
}

// deadLine is a dead letter: the 1-based number of its line and why.
type deadLine struct {
	line   int64
	reason string
}

// score runs the job: lines, parsed and checked, scored by the inference stage, written in
// input order. It returns the dead letters by line number.
func score(ctx context.Context, c config, model *onnxrt.Model, log *slog.Logger) ([]deadLine, error) {
	width := model.InputWidth()
	sink, err := stream.JSONLFileSink[result](c.out)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var dead []deadLine
	onDead := func(d stream.DeadLetter) {
		var line int64
		switch v := d.Value.(type) {
		case numberedLine:
			line = v.n
		case request:
			line = v.Line
		case infer.Scored[request]:
			line = v.In.Line
		default:
			line = d.Position
		}
		mu.Lock()
		dead = append(dead, deadLine{line, d.Reason})
		mu.Unlock()
	}

	g := graph.New("score")
	lines := graph.From(g, numberedLines(c.in), graph.Name("lines"))
	reqs := graph.TryMap(lines, func(l numberedLine) (request, error) { return parse(l, width) }, graph.Name("parse"))
	scored := infer.Stage(reqs, model, func(r request) []float32 { return r.Features },
		infer.MaxBatch(c.batch), infer.Concurrency(c.concurrency), infer.Name("model"),
		infer.WithCodec(stream.JSON[request]()))
	out := graph.TryMap(scored, func(s infer.Scored[request]) (result, error) {
		for _, v := range s.Output {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return result{}, fmt.Errorf("the model's output %v is not finite", s.Output)
			}
		}
		return result{ID: s.In.ID, Output: s.Output}, nil
	}, graph.Name("result"))
	out.To(sink, graph.Name("out"))

	linger := c.maxDelay
	if linger == 0 {
		linger = time.Nanosecond // 0 would be the job's default linger
	}
	err = g.Run(ctx,
		graph.Parallelism(1), // one instance of the stage: output in input order
		graph.BatchSize(c.batch*c.concurrency),
		graph.Linger(linger),
		graph.OnError(actor.Skip),
		graph.DeadLetters(onDead),
		graph.Logger(log))
	if err != nil {
		return nil, fmt.Errorf("score %s: %w", c.in, err)
	}
	slices.SortStableFunc(dead, func(a, b deadLine) int { return cmp.Compare(a.line, b.line) })
	return dead, nil
}

// parse checks one line against the input contract.
func parse(l numberedLine, width int) (request, error) {
	text := bytes.TrimSpace([]byte(l.text))
	if len(text) == 0 {
		return request{}, errors.New("blank line")
	}
	if text[0] != '{' {
		return request{}, errors.New("not a JSON object")
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&obj); err != nil {
		return request{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return request{}, errors.New("data after the JSON object")
	}
	rawID, ok := obj["id"]
	if !ok {
		return request{}, errors.New(`no "id"`)
	}
	var id string
	if !isString(rawID) || json.Unmarshal(rawID, &id) != nil {
		return request{}, fmt.Errorf(`"id" is %s, not a string`, kindOf(rawID))
	}
	rawFeatures, ok := obj["features"]
	if !ok {
		return request{}, errors.New(`no "features"`)
	}
	var elems []json.RawMessage
	if t := bytes.TrimSpace(rawFeatures); len(t) == 0 || t[0] != '[' || json.Unmarshal(t, &elems) != nil {
		return request{}, fmt.Errorf(`"features" is %s, not an array`, kindOf(rawFeatures))
	}
	features := make([]float32, len(elems))
	for i, e := range elems {
		e = bytes.TrimSpace(e)
		if len(e) == 0 || (e[0] != '-' && (e[0] < '0' || e[0] > '9')) {
			return request{}, fmt.Errorf(`"features"[%d] is %s, not a number`, i, kindOf(e))
		}
		f, err := strconv.ParseFloat(string(e), 32)
		if err != nil || math.IsInf(f, 0) {
			return request{}, fmt.Errorf(`"features"[%d] = %s does not fit a float32`, i, e)
		}
		features[i] = float32(f)
	}
	if len(features) != width {
		return request{}, fmt.Errorf(`"features" has %d numbers; the model takes %d`, len(features), width)
	}
	return request{Line: l.n, ID: id, Features: features}, nil
}

func isString(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '"'
}

// kindOf names the JSON type of raw, for messages.
func kindOf(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "empty"
	}
	switch c := t[0]; {
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	default:
		return "a number"
	}
}

// numberedLine is a line of the input and its 1-based number.
type numberedLine struct {
	n    int64
	text string
}

// numberedLines is a source of the lines of the file at path with their numbers: one
// split. Lines may be of any length; a last line without "\n" is a line, and "\r\n" ends a
// line as "\n" does.
func numberedLines(path string) stream.Source[numberedLine] { return lineFile(path) }

type lineFile string

func (p lineFile) Splits(int) ([]stream.Split[numberedLine], error) {
	f, err := os.Open(string(p))
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	return []stream.Split[numberedLine]{&lineSplit{f: f, r: bufio.NewReaderSize(f, 64<<10)}}, nil
}

type lineSplit struct {
	f   *os.File
	r   *bufio.Reader
	n   int64
	eof bool
}

func (s *lineSplit) Read(_ context.Context, max int, out stream.Output[numberedLine]) (int, error) {
	for i := 0; i < max; i++ {
		if s.eof {
			return i, io.EOF
		}
		text, err := s.r.ReadString('\n')
		switch {
		case err == io.EOF:
			s.eof = true
			if text == "" {
				return i, io.EOF
			}
		case err != nil:
			return i, fmt.Errorf("read %s after line %d: %w", s.f.Name(), s.n, err)
		default:
			text = text[:len(text)-1]
			if len(text) > 0 && text[len(text)-1] == '\r' {
				text = text[:len(text)-1]
			}
		}
		s.n++
		out.Emit(stream.Record[numberedLine]{Value: numberedLine{s.n, text}})
	}
	return max, nil
}

func (s *lineSplit) Close() error { return s.f.Close() }
