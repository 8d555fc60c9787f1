package actortest

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/jobruntime"
	"github.com/eddyflow/eddy/stream"
)

// Epoch is where a harness's manual clock starts.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// StageHarness runs the stages built on its input deterministically, on the test's goroutine.
// It is not safe for concurrent use.
type StageHarness[In any] struct {
	*core
	main *Input[In]
}

// inputRef is what the core knows of an input: its stage, vertex and end.
type inputRef struct {
	name      string
	vertex    int
	end       func()
	watermark func(int64)
}

// Input is a stream the test feeds: the harness's own (Input), or more made with AddInput
// for stages of two inputs.
type Input[T any] struct {
	c   *core
	ref *inputRef
	src *inputSource[T]
	s   graph.Stream[T]
}

// AddInput adds another input named name to the harness's graph, for stages with two
// inputs (joins). Call it before the first Push.
func AddInput[T any](h Stager, name string) *Input[T] {
	c := h.harness()
	c.t.Helper()
	if c.drv != nil {
		c.t.Fatalf("add input %s: the harness has started", name)
	}
	return newInput[T](c, name)
}

func newInput[T any](c *core, name string) *Input[T] {
	in := &Input[T]{c: c, src: &inputSource[T]{}}
	in.s = graph.From[T](c.g, in.src, graph.Name(name))
	in.ref = &inputRef{name: in.s.Name(), vertex: -1, end: func() { in.src.ended = true }, watermark: in.Watermark}
	c.inputs = append(c.inputs, in.ref)
	return in
}

// Stream returns the stream the input feeds.
func (in *Input[T]) Stream() graph.Stream[T] { return in.s }

// Push feeds one value with event timestamp ts (Unix ms) and runs until nothing moves.
func (in *Input[T]) Push(v T, ts int64) { in.PushRecord(stream.Record[T]{Value: v, Time: ts}) }

// Retract feeds a retraction of v.
func (in *Input[T]) Retract(v T, ts int64) {
	in.PushRecord(stream.Record[T]{Value: v, Time: ts, Kind: stream.Retract})
}

// PushRecord feeds records and runs until nothing moves.
func (in *Input[T]) PushRecord(recs ...stream.Record[T]) {
	in.c.t.Helper()
	in.c.Start()
	if in.src.ended {
		in.c.t.Fatalf("push to %s after End", in.ref.name)
	}
	for _, r := range recs {
		in.src.pending = append(in.src.pending, input[T]{rec: r})
	}
	in.c.note(in.c.drv.Wake(in.ref.vertex))
}

// Watermark feeds a watermark (Unix ms) after the records pushed so far, and runs until
// nothing moves. A stage with several inputs moves at the lowest of their watermarks.
func (in *Input[T]) Watermark(w int64) {
	in.c.t.Helper()
	in.c.Start()
	in.src.pending = append(in.src.pending, input[T]{wm: w, isWM: true})
	in.c.note(in.c.drv.Wake(in.ref.vertex))
	in.c.flushWatermarks()
}

// flushWatermarks sends watermarks on at once, stage after stage, as if the watermark
// interval passed as often as needed, until nothing moves.
func (c *core) flushWatermarks() {
	for range len(c.desc.Vertices) {
		c.note(c.drv.FlushWatermarks())
	}
}

// core is the part of a harness that does not depend on its input type.
type core struct {
	t      testing.TB
	g      *graph.Graph
	clock  *stream.ManualClock
	opts   []graph.JobOption
	job    *graph.Job
	drv    *actor.SyncDriver
	desc   graph.Description
	inputs []*inputRef
	err    error

	// mu guards dead: dead letters arrive through the job's callback.
	mu   sync.Mutex
	dead []stream.DeadLetter
}

// Stager is a harness of any input type, for the functions that attach outputs to it.
type Stager interface{ harness() *core }

func (c *core) harness() *core { return c }

// NewStageHarness returns a harness whose input carries records of In. Build stages on Input,
// attach outputs with Collect, then Push. Job options (graph.BatchSize, graph.MaxKeyGroups,
// graph.OnError, ...) apply to the job the harness builds; the harness always sets the clock,
// the dead-letter output and a parallelism of 1.
func NewStageHarness[In any](t testing.TB, opts ...graph.JobOption) *StageHarness[In] {
	t.Helper()
	h := &StageHarness[In]{core: &core{t: t, g: graph.New("test"), clock: stream.NewManualClock(Epoch), opts: opts}}
	h.main = newInput[In](h.core, "input")
	t.Cleanup(func() {
		if h.drv != nil {
			if err := h.drv.Close(); err != nil {
				t.Errorf("close harness: %v", err)
			}
		}
	})
	return h
}

// Input returns the stream that Push feeds.
func (h *StageHarness[In]) Input() graph.Stream[In] { return h.main.s }

// Graph returns the graph the input belongs to, for stages that start elsewhere.
func (h *StageHarness[In]) Graph() *graph.Graph { return h.g }

// Clock returns the harness's manual clock.
func (h *StageHarness[In]) Clock() *stream.ManualClock { return h.clock }

// Start builds the graph and starts the job; Push does it on first use. A build error
// fails the test.
func (c *core) Start() {
	c.t.Helper()
	if c.drv != nil {
		return
	}
	opts := append([]graph.JobOption{graph.BatchSize(1)}, c.opts...)
	opts = append(opts, graph.Parallelism(1), graph.Clock(c.clock), graph.DeadLetters(func(d stream.DeadLetter) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.dead = append(c.dead, d)
	}))
	job, err := c.g.Build(opts...)
	if err != nil {
		c.t.Fatalf("build the harness's graph: %v", err)
	}
	c.job, c.desc = job, job.Describe()
	for _, in := range c.inputs {
		for i, v := range c.desc.Vertices {
			if v.Name == in.name {
				in.vertex = i
			}
		}
	}
	drv, err := actor.NewSyncDriver(jobruntime.Of(job))
	if err != nil {
		c.t.Fatalf("start the harness's job: %v", err)
	}
	c.drv = drv
	c.note(drv.Start())
}

func (c *core) note(err error) {
	if err != nil && c.err == nil {
		c.err = err
	}
}

// Push feeds one value of the harness's input with event timestamp ts (Unix ms) and runs
// until nothing moves.
func (h *StageHarness[In]) Push(v In, ts int64) { h.main.Push(v, ts) }

// Retract feeds a retraction of v.
func (h *StageHarness[In]) Retract(v In, ts int64) { h.main.Retract(v, ts) }

// WatermarkInput feeds a watermark to the harness's own input only (Watermark feeds all).
func (h *StageHarness[In]) WatermarkInput(w int64) { h.main.Watermark(w) }

// PushRecord feeds records and runs until nothing moves.
func (h *StageHarness[In]) PushRecord(recs ...stream.Record[In]) { h.main.PushRecord(recs...) }

// Watermark feeds a watermark to every input, and runs until nothing moves: event-time
// timers and windows the watermark passes fire.
func (c *core) Watermark(w int64) {
	c.t.Helper()
	c.Start()
	for _, in := range c.inputs {
		in.watermark(w)
	}
}

// End ends every input: stages drain, emit what they hold back, fire pending timers and
// finish.
func (c *core) End() {
	c.t.Helper()
	c.Start()
	for _, in := range c.inputs {
		in.end()
		c.note(c.drv.Wake(in.vertex))
	}
}

// Flush sends every partly filled batch, as if the linger had passed, and runs.
func (c *core) Flush() {
	c.t.Helper()
	c.Start()
	c.note(c.drv.Flush())
}

// Advance moves the manual clock forward by d, stopping at each callback's due time to
// run what it set off, so that timers fire in order and see their own time.
func (c *core) Advance(d time.Duration) {
	c.t.Helper()
	c.Start()
	target := c.clock.Now().Add(d)
	for {
		next, ok := c.clock.Next()
		if !ok || next.After(target) {
			break
		}
		c.clock.Set(next)
		c.note(c.drv.Run())
	}
	c.clock.Set(target)
	c.note(c.drv.Run())
}

// Now returns the manual clock's time.
func (c *core) Now() time.Time { return c.clock.Now() }

// Err returns the job's error (a failed job under actor.FailJob), if any.
func (c *core) Err() error { return c.err }

// Done reports whether every instance has finished (after End).
func (c *core) Done() bool { return c.drv != nil && c.drv.Done() }

// DeadLetters returns the dead letters so far, in order.
func (c *core) DeadLetters() []stream.DeadLetter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]stream.DeadLetter(nil), c.dead...)
}

// State returns what keyed stage stage holds for key: the accumulator of an aggregate, the
// named states of a process function. ok is false when the key holds nothing.
func (c *core) State(stage string, key any) (state any, ok bool) {
	c.t.Helper()
	c.Start()
	for vi, v := range c.desc.Vertices {
		if v.Name != stage {
			continue
		}
		for i := range v.Instances {
			if in, isInspector := c.drv.Task(vi, i).(actor.Inspector); isInspector {
				if s, ok := in.Inspect(key); ok {
					return s, true
				}
			}
		}
		return nil, false
	}
	c.t.Fatalf("state: no keyed stage named %q", stage)
	return nil, false
}

// Stats returns the job's counters.
func (c *core) Stats() []actor.StageStats {
	c.Start()
	return c.job.Stats()
}

// Describe returns the plan of the harness's job.
func (c *core) Describe() graph.Description {
	c.Start()
	return c.desc
}

// Output collects what a stream carries.
type Output[T any] struct {
	sink *stream.CollectSink[T]
	seen int
}

// Collect attaches an output to s, which must be built on h's input. Call it before the
// first Push.
func Collect[T any](h Stager, s graph.Stream[T]) *Output[T] {
	c := h.harness()
	c.t.Helper()
	if c.drv != nil {
		c.t.Fatalf("collect %s: the harness has started; attach outputs before the first Push", s.Name())
	}
	o := &Output[T]{sink: stream.NewCollectSink[T]()}
	s.To(o.sink)
	return o
}

// Records returns every record so far.
func (o *Output[T]) Records() []stream.Record[T] { return o.sink.Records() }

// Values returns the values of every record so far.
func (o *Output[T]) Values() []T { return o.sink.Values() }

// Take returns the records that arrived since the last Take.
func (o *Output[T]) Take() []stream.Record[T] {
	all := o.sink.Records()
	out := all[o.seen:]
	o.seen = len(all)
	return out
}

// inputSource is the harness's input: one split that reads what Push and Watermark left,
// and says actor.ErrWait when there is nothing until the next Push.
type inputSource[T any] struct {
	pending []input[T]
	ended   bool
}

// input is a record or, when isWM, a watermark.
type input[T any] struct {
	rec  stream.Record[T]
	wm   int64
	isWM bool
}

func (s *inputSource[T]) Splits(int) ([]stream.Split[T], error) { return []stream.Split[T]{s}, nil }

func (s *inputSource[T]) Read(_ context.Context, max int, out stream.Output[T]) (int, error) {
	if len(s.pending) == 0 {
		if s.ended {
			return 0, io.EOF
		}
		return 0, actor.ErrWait
	}
	n, i := 0, 0
	for ; i < len(s.pending) && n < max; i++ {
		if in := s.pending[i]; in.isWM {
			out.Watermark(in.wm)
		} else {
			out.Emit(in.rec)
			n++
		}
	}
	clear(s.pending[:i])
	s.pending = s.pending[i:]
	return n, nil
}

func (s *inputSource[T]) Close() error { return nil }
