package actortest_test

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Event is the input of the operator scripts.
type Event struct {
	Key   string
	Value int
}

var eventCodec = graph.WithCodec(stream.JSON[Event]())

// script runs one datadriven file against a harness built by setup from the script's
// first command, "build <pipeline> [batch=N] [emit=MODE] [policy=P] [local=on|off]".
func TestOperatorScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var s *scriptEnv
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "build" {
				s = newScript(t, d)
				return ""
			}
			if s == nil {
				return "error: the script must start with build\n"
			}
			return s.handle(t, d)
		})
	})
}

type scriptEnv struct {
	h     *actortest.StageHarness[Event]
	right *actortest.Input[Event]
	out   func() []string
	side  func() []string
	stage string
	nDead int
}

// scriptArgs lists, per pipeline of `build`, the arguments it takes and how many values each
// has; every pipeline also takes the job's (batch, emit, idle, ttl, policy). An argument
// that is not listed, or has another number of values, fails the test: a misspelt argument
// must not silently build another job than the script says.
var scriptArgs = map[string]map[string]int{
	"count":         {"local": 1},
	"sum":           {"local": 1},
	"eventtimer":    {},
	"window":        {"global": 0, "sliding": 1, "count": 1, "processing": 0, "early": 1, "purge": 0, "tumbling": 1, "hopping": 2, "session": 1, "lateness": 1, "changelog": 0},
	"processwindow": {"tumbling": 1},
	"interval":      {"lower": 1, "upper": 1},
	"windowjoin":    {"tumbling": 1, "session": 1},
	"tablejoin":     {},
	"temporaljoin":  {},
	"idle":          {"gap": 1},
}

var jobArgs = map[string]int{"batch": 1, "emit": 1, "idle": 1, "ttl": 2, "policy": 1}

func checkScriptArgs(t *testing.T, d *datadriven.TestData) {
	t.Helper()
	if len(d.CmdArgs) == 0 {
		t.Fatalf("%s: build needs a pipeline", d.Pos)
	}
	pipeline := d.CmdArgs[0].Key
	allowed, ok := scriptArgs[pipeline]
	if !ok {
		t.Fatalf("%s: unknown pipeline %q", d.Pos, pipeline)
	}
	for _, a := range d.CmdArgs[1:] {
		n, ok := allowed[a.Key]
		if !ok {
			n, ok = jobArgs[a.Key]
		}
		if !ok {
			t.Fatalf("%s: build %s: unknown argument %q", d.Pos, pipeline, a.Key)
		}
		if len(a.Vals) != n {
			t.Fatalf("%s: build %s: argument %q takes %d values, got %d", d.Pos, pipeline, a.Key, n, len(a.Vals))
		}
	}
}

// oneOf returns m[v], failing the test for a value m does not have.
func oneOf[V any](t *testing.T, what, v string, m map[string]V) V {
	t.Helper()
	x, ok := m[v]
	if !ok {
		t.Fatalf("unknown %s %q", what, v)
	}
	return x
}

// atoi parses a whole number of a script, failing the test for anything else.
func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("bad number %q: %v", s, err)
	}
	return n
}

func newScript(t *testing.T, d *datadriven.TestData) *scriptEnv {
	checkScriptArgs(t, d)
	var opts []graph.JobOption
	var stageOpts []graph.Option
	pipeline := d.CmdArgs[0].Key
	for _, a := range d.CmdArgs[1:] {
		switch a.Key {
		case "batch":
			opts = append(opts, graph.BatchSize(int(atoi(t, a.Vals[0]))))
		case "emit":
			m := oneOf(t, "emit mode", a.Vals[0], map[string]stream.EmitMode{"per-batch": stream.EmitPerBatch, "every-update": stream.EmitEveryUpdate, "at-end": stream.EmitAtEnd})
			stageOpts = append(stageOpts, graph.Emit(m))
		case "idle":
			opts = append(opts, graph.IdleTimeout(dur(t, a.Vals[0])))
		case "local":
			stageOpts = append(stageOpts, graph.LocalAggregation(oneOf(t, "local aggregation", a.Vals[0], map[string]bool{"on": true, "off": false})))
		case "ttl":
			ttl := oneOf(t, "ttl kind", a.Vals[0], map[string]func(time.Duration) stream.TTL{"event": stream.EventTimeTTL, "processing": stream.ProcessingTimeTTL})
			stageOpts = append(stageOpts, graph.StateTTL(ttl(dur(t, a.Vals[1]))))
		case "policy":
			p := oneOf(t, "error policy", a.Vals[0], map[string]actor.ErrorPolicy{"skip": actor.Skip, "restart": actor.RestartStage, "fail": actor.FailJob})
			opts = append(opts, graph.OnError(p))
		}
	}
	h := actortest.NewStageHarness[Event](t, opts...)
	s := &scriptEnv{h: h}
	keyed := graph.KeyBy(h.Input(), func(e Event) string { return e.Key }, eventCodec)
	switch pipeline {
	case "count":
		st := graph.Count(keyed, append(stageOpts, graph.Name("count"))...)
		s.stage = st.Name()
		o := actortest.Collect(h, st)
		s.out = func() []string { return showKV(o.Take()) }
	case "sum":
		vals := graph.Map(h.Input(), func(e Event) stream.KV[string, int] { return stream.KV[string, int]{Key: e.Key, Value: e.Value} })
		st := graph.Aggregate(graph.KeyBy(vals, func(kv stream.KV[string, int]) string { return kv.Key }, graph.WithCodec(stream.JSON[stream.KV[string, int]]())), sumKV{}, append(stageOpts, graph.Name("sum"))...)
		s.stage = st.Name()
		o := actortest.Collect(h, st)
		s.out = func() []string { return showKV(o.Take()) }
	case "window":
		// window tumbling=10s | hopping=10s,5s | session=3s, with lateness=D and changelog
		var w stream.WindowAssigner
		trigger := stream.EventTimeTrigger()
		for _, a := range d.CmdArgs[1:] {
			switch a.Key {
			case "global":
				w = stream.Global()
			case "sliding":
				w = stream.Sliding(dur(t, a.Vals[0]))
			case "count":
				trigger = stream.CountTrigger(atoi(t, a.Vals[0]))
			case "processing":
				trigger = stream.ProcessingTimeTrigger()
			case "early":
				trigger = trigger.WithEarlyFirings(dur(t, a.Vals[0]))
			case "purge":
				trigger = trigger.Purging()
			case "tumbling":
				w = stream.Tumbling(dur(t, a.Vals[0]))
			case "hopping":
				w = stream.Hopping(dur(t, a.Vals[0]), dur(t, a.Vals[1]))
			case "session":
				w = stream.Session(dur(t, a.Vals[0]))
			case "lateness":
				stageOpts = append(stageOpts, graph.Lateness(dur(t, a.Vals[0])))
			case "changelog":
				stageOpts = append(stageOpts, graph.Changelog())
			}
		}
		st := graph.Window(keyed, w, countSum{}, append(stageOpts, graph.Name("window"), graph.Trigger(trigger))...)
		s.stage = st.Name()
		o := actortest.Collect(h, st)
		late := actortest.Collect(h, graph.SideOutput(st, stream.LateTag[Event]()))
		s.out = func() []string {
			var out []string
			for _, r := range o.Take() {
				v := r.Value
				out = append(out, fmt.Sprintf("%s [%d,%d) count=%d sum=%d @%d%s", v.Key, v.Start, v.End, v.Value.Count, v.Value.Sum, r.Time, kindMark(r.Kind)))
			}
			return out
		}
		s.side = func() []string {
			var out []string
			for _, r := range late.Take() {
				out = append(out, fmt.Sprintf("late %s %d @%d", r.Value.Key, r.Value.Value, r.Time))
			}
			return out
		}
	case "eventtimer":
		st := graph.Process(keyed, eventTimerCount(5000), append(stageOpts, graph.Name("timer"))...)
		s.stage = st.Name()
		o := actortest.Collect(h, st)
		s.out = func() []string { return showStrings(o.Take()) }
	case "processwindow":
		st := graph.ProcessWindow(keyed, stream.Tumbling(dur(t, d.CmdArgs[1].Vals[0])),
			func(k string, w stream.TimeWindow, es []Event, emit func(string)) {
				if len(es) == 13 {
					panic("thirteen")
				}
				emit(fmt.Sprintf("%s %s: %v", k, w, values(es)))
			}, append(stageOpts, graph.Name("window"))...)
		s.stage = st.Name()
		o := actortest.Collect(h, st)
		s.out = func() []string { return showStrings(o.Take()) }
	case "interval", "windowjoin", "tablejoin", "temporaljoin":
		s.right = actortest.AddInput[Event](h, "right")
		rightKeyed := graph.KeyBy(s.right.Stream(), func(e Event) string { return e.Key }, eventCodec)
		pair := func(a, b Event) string { return fmt.Sprintf("%s: %d+%d", a.Key, a.Value, b.Value) }
		var st graph.Stream[string]
		switch pipeline {
		case "interval":
			var lower, upper time.Duration
			for _, a := range d.CmdArgs[1:] {
				switch a.Key {
				case "lower":
					lower = dur(t, a.Vals[0])
				case "upper":
					upper = dur(t, a.Vals[0])
				}
			}
			st = graph.IntervalJoin(keyed, rightKeyed, lower, upper, pair, graph.Name("join"))
		case "windowjoin":
			w := stream.Tumbling(dur(t, d.CmdArgs[1].Vals[0]))
			if d.CmdArgs[1].Key == "session" {
				w = stream.Session(dur(t, d.CmdArgs[1].Vals[0]))
			}
			st = graph.WindowJoin(keyed, rightKeyed, w,
				func(k string, w stream.TimeWindow, as, bs []Event, emit func(string)) {
					emit(fmt.Sprintf("%s %s: left %v right %v", k, w, values(as), values(bs)))
				}, graph.Name("join"))
		case "tablejoin", "temporaljoin":
			enrich := func(e Event, v Event, found bool) (string, bool) {
				if !found {
					return fmt.Sprintf("%s: %d with no value", e.Key, e.Value), true
				}
				return pair(e, v), true
			}
			if pipeline == "tablejoin" {
				st = graph.JoinTable(keyed, rightKeyed, enrich, graph.Name("join"))
			} else {
				st = graph.TemporalJoin(keyed, rightKeyed, enrich, graph.Name("join"))
			}
		}
		s.stage = st.Name()
		o := actortest.Collect(h, st)
		s.out = func() []string { return showStrings(o.Take()) }
		if pipeline == "interval" || pipeline == "windowjoin" {
			lateL := actortest.Collect(h, graph.SideOutput(st, stream.LateTag[Event]()))
			lateR := actortest.Collect(h, graph.SideOutput(st, stream.LateRightTag[Event]()))
			s.side = func() []string {
				var out []string
				for _, r := range lateL.Take() {
					out = append(out, fmt.Sprintf("late left %s %d @%d", r.Value.Key, r.Value.Value, r.Time))
				}
				for _, r := range lateR.Take() {
					out = append(out, fmt.Sprintf("late right %s %d @%d", r.Value.Key, r.Value.Value, r.Time))
				}
				return out
			}
		}
	case "idle":
		gap := 10 * time.Second
		for _, a := range d.CmdArgs[1:] {
			if a.Key == "gap" {
				gap = dur(t, a.Vals[0])
			}
		}
		st := graph.Process(keyed, idleAlert(gap), append(stageOpts, graph.Name("idle"))...)
		s.stage = st.Name()
		o := actortest.Collect(h, st)
		neg := actortest.Collect(h, graph.SideOutput(st, negative))
		s.out = func() []string { return showStrings(o.Take()) }
		s.side = func() []string { return showStrings(neg.Take()) }
	default:
		t.Fatalf("unknown pipeline %q", pipeline)
	}
	return s
}

func (s *scriptEnv) handle(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "push", "retract", "push-right", "retract-right":
		// One event per line: key value ts.
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				return fmt.Sprintf("error: want 'key value ts', got %q\n", line)
			}
			v, err1 := strconv.Atoi(f[1])
			ts, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				return fmt.Sprintf("error: bad numbers in %q\n", line)
			}
			e := Event{Key: f[0], Value: v}
			switch d.Cmd {
			case "push":
				s.h.Push(e, ts)
			case "retract":
				s.h.Retract(e, ts)
			case "push-right":
				s.right.Push(e, ts)
			case "retract-right":
				s.right.Retract(e, ts)
			}
		}
		return s.flushOutput()
	case "watermark", "watermark-left", "watermark-right":
		w, err := strconv.ParseInt(d.CmdArgs[0].Key, 10, 64)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		switch d.Cmd {
		case "watermark":
			s.h.Watermark(w)
		case "watermark-left":
			s.h.WatermarkInput(w)
		case "watermark-right":
			s.right.Watermark(w)
		}
		return s.flushOutput()
	case "advance-time":
		dur, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		s.h.Advance(dur)
		return fmt.Sprintf("now +%s\n", s.h.Now().Sub(actortest.Epoch)) + s.flushOutput()
	case "flush":
		s.h.Flush()
		return s.flushOutput()
	case "end":
		s.h.End()
		return s.flushOutput() + fmt.Sprintf("done: %v\n", s.h.Done())
	case "state":
		st, ok := s.h.State(s.stage, d.CmdArgs[0].Key)
		if !ok {
			return "no state\n"
		}
		return fmt.Sprintf("%v\n", showState(st))
	case "stats":
		var b strings.Builder
		for _, st := range s.h.Stats() {
			fmt.Fprintf(&b, "%s: in=%d out=%d dead=%d restarts=%d late=%d\n", st.Stage, st.In, st.Out, st.DeadLetters, st.Restarts, st.Late)
		}
		return b.String()
	case "error":
		if err := s.h.Err(); err != nil {
			return err.Error() + "\n"
		}
		return "no error\n"
	default:
		return fmt.Sprintf("error: unknown command %q\n", d.Cmd)
	}
}

// flushOutput prints what arrived since the last command: outputs, side outputs, dead
// letters.
func (s *scriptEnv) flushOutput() string {
	var b strings.Builder
	for _, l := range s.out() {
		fmt.Fprintf(&b, "out: %s\n", l)
	}
	if s.side != nil {
		for _, l := range s.side() {
			fmt.Fprintf(&b, "side: %s\n", l)
		}
	}
	dead := s.h.DeadLetters()
	for _, dl := range dead[s.nDead:] {
		fmt.Fprintf(&b, "dead: %s: %s (%v)\n", dl.Stage, dl.Reason, dl.Value)
	}
	s.nDead = len(dead)
	return b.String()
}

func showKV[K comparable, V any](recs []stream.Record[stream.KV[K, V]]) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%v=%v@%d%s", r.Value.Key, r.Value.Value, r.Time, kindMark(r.Kind)))
	}
	return out
}

func showStrings(recs []stream.Record[string]) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s@%d", r.Value, r.Time))
	}
	return out
}

func kindMark(k stream.Kind) string {
	if k == stream.Retract {
		return " (retract)"
	}
	return ""
}

func showState(st any) string {
	m, ok := st.(map[string]any)
	if !ok {
		return fmt.Sprint(st)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// sumKV sums the values of a key; it can retract, and fails on a value of 13, to test the
// error policies.
type sumKV struct{}

func (sumKV) Zero() int { return 0 }
func (sumKV) Add(acc int, kv stream.KV[string, int]) int {
	if kv.Value == 13 {
		panic("unlucky value 13")
	}
	return acc + kv.Value
}
func (sumKV) Retract(acc int, kv stream.KV[string, int]) int { return acc - kv.Value }
func (sumKV) Result(acc int) int                             { return acc }

var negative = stream.NewTag[string]("negative")

// idleAlert counts a key's events and, once the key has been quiet for gap of processing
// time, emits "key: n events" and forgets the key. Negative values go to a side output.
func idleAlert(gap time.Duration) stream.KeyedProcess[string, Event, string] {
	count := stream.NewValueState[int]("count")
	due := stream.NewValueState[time.Time]("due")
	return stream.KeyedProcess[string, Event, string]{
		OnRecord: func(ctx stream.Context[string], e Event, out stream.Emitter[string]) error {
			if e.Value < 0 {
				negative.Emit(out, fmt.Sprintf("%s: %d", e.Key, e.Value))
				return nil
			}
			if e.Value == 0 {
				return fmt.Errorf("value 0 is not allowed")
			}
			n, _ := count.Get(ctx)
			count.Set(ctx, n+1)
			if old, ok := due.Get(ctx); ok {
				ctx.DeleteTimer(old)
			}
			at := ctx.Now().Add(gap)
			due.Set(ctx, at)
			ctx.RegisterTimer(at)
			return nil
		},
		OnTimer: func(ctx stream.Context[string], at time.Time, out stream.Emitter[string]) error {
			n, _ := count.Get(ctx)
			out.Emit(fmt.Sprintf("%s: %d events, idle since %s", ctx.Key(), n, at.Add(-gap).Sub(actortest.Epoch)))
			count.Clear(ctx)
			due.Clear(ctx)
			return nil
		},
	}
}

func dur(t *testing.T, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad duration %q: %v", s, err)
	}
	return d
}

// CountSum is the accumulator and result of countSum.
type CountSum struct {
	Count int64
	Sum   int
}

// countSum counts and sums events' values; it retracts and merges (for sessions).
type countSum struct{}

func (countSum) Zero() CountSum { return CountSum{} }
func (countSum) Add(a CountSum, e Event) CountSum {
	return CountSum{a.Count + 1, a.Sum + e.Value}
}
func (countSum) Retract(a CountSum, e Event) CountSum {
	return CountSum{a.Count - 1, a.Sum - e.Value}
}
func (countSum) Merge(a, b CountSum) CountSum { return CountSum{a.Count + b.Count, a.Sum + b.Sum} }
func (countSum) Result(a CountSum) CountSum   { return a }

func values(es []Event) []int {
	out := make([]int, len(es))
	for i, e := range es {
		out[i] = e.Value
	}
	return out
}

// eventTimerCount counts a key's records and reports the count delay ms of event time after
// its first record, then starts over: an event-time timer per key.
func eventTimerCount(delay int64) stream.KeyedProcess[string, Event, string] {
	count := stream.NewValueState[int]("count")
	return stream.KeyedProcess[string, Event, string]{
		OnRecord: func(ctx stream.Context[string], e Event, out stream.Emitter[string]) error {
			n, ok := count.Get(ctx)
			if !ok {
				ctx.RegisterEventTimer(ctx.Timestamp() + delay)
			}
			count.Set(ctx, n+1)
			return nil
		},
		OnEventTimer: func(ctx stream.Context[string], ts int64, out stream.Emitter[string]) error {
			n, _ := count.Get(ctx)
			out.Emit(fmt.Sprintf("%s: %d by %d (watermark %d)", ctx.Key(), n, ts, ctx.Watermark()))
			count.Clear(ctx)
			return nil
		},
	}
}
