package operator

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/stream"
)

// stateCmd is one input of the test process function: do op on the state of key.
type stateCmd struct {
	key string
	op  string // set, clear-value, put, delete, clear-map, append, clear-list, timer, delete-timer, show
	arg string
	n   int
}

var (
	testValue = stream.NewValueState[int]("v")
	testMap   = stream.NewMapState[string, int]("m")
	testList  = stream.NewListState[string]("l")
)

// show renders the current key's states.
func show(ctx stream.Context[string]) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", ctx.Key())
	if v, ok := testValue.Get(ctx); ok {
		fmt.Fprintf(&b, " v=%d", v)
	}
	if testMap.Len(ctx) > 0 {
		m := map[string]int{}
		testMap.All(ctx, func(k string, v int) bool { m[k] = v; return true })
		fmt.Fprintf(&b, " m=")
		for i, k := range slices.Sorted(maps.Keys(m)) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%d", k, m[k])
		}
	}
	if items := testList.Items(ctx); len(items) > 0 {
		fmt.Fprintf(&b, " l=%s", strings.Join(items, ","))
	}
	return b.String()
}

func newStateOperator(onTimer bool) (*ProcessOperator[string, stateCmd, string], *[]Record[string]) {
	var out []Record[string]
	fn := KeyedProcess[string, stateCmd, string]{
		OnRecord: func(ctx stream.Context[string], c stateCmd, e stream.Emitter[string]) error {
			switch c.op {
			case "set":
				testValue.Set(ctx, c.n)
			case "clear-value":
				testValue.Clear(ctx)
			case "put":
				testMap.Put(ctx, c.arg, c.n)
			case "delete":
				testMap.Delete(ctx, c.arg)
			case "clear-map":
				testMap.Clear(ctx)
			case "append":
				testList.Append(ctx, c.arg)
			case "clear-list":
				testList.Clear(ctx)
			case "timer":
				ctx.RegisterTimer(time.UnixMilli(int64(c.n)))
			case "delete-timer":
				ctx.DeleteTimer(time.UnixMilli(int64(c.n)))
			case "show":
				e.Emit(show(ctx))
			default:
				return fmt.Errorf("unknown op %q", c.op)
			}
			return nil
		},
	}
	if onTimer {
		fn.OnTimer = func(ctx stream.Context[string], at time.Time, e stream.Emitter[string]) error {
			e.Emit(fmt.Sprintf("timer %s@%d now=%d", ctx.Key(), at.UnixMilli(), ctx.Now().UnixMilli()))
			return nil
		}
	}
	op := NewProcessOperator(func(c stateCmd) string { return c.key }, fn,
		NewEmitter(func(r Record[string]) { out = append(out, r) }, nil))
	return op, &out
}

func TestStateHandles(t *testing.T) {
	tests := []struct {
		name    string
		cmds    []stateCmd
		want    []string
		wantLen int // KeyedState.Len at the end
	}{
		{"value", []stateCmd{{key: "a", op: "set", n: 1}, {key: "a", op: "show"}, {key: "a", op: "set", n: 2}, {key: "a", op: "show"}},
			[]string{"a: v=1", "a: v=2"}, 1},
		{"value clear drops the key", []stateCmd{{key: "a", op: "set", n: 1}, {key: "a", op: "clear-value"}, {key: "a", op: "show"}},
			[]string{"a:"}, 0},
		{"map", []stateCmd{{key: "a", op: "put", arg: "x", n: 1}, {key: "a", op: "put", arg: "y", n: 2}, {key: "a", op: "put", arg: "x", n: 3}, {key: "a", op: "show"}},
			[]string{"a: m=x:3,y:2"}, 1},
		{"map delete", []stateCmd{{key: "a", op: "put", arg: "x", n: 1}, {key: "a", op: "put", arg: "y", n: 2}, {key: "a", op: "delete", arg: "x"}, {key: "a", op: "show"}},
			[]string{"a: m=y:2"}, 1},
		{"map delete of the last entry drops the key", []stateCmd{{key: "a", op: "put", arg: "x", n: 1}, {key: "a", op: "delete", arg: "x"}, {key: "a", op: "show"}},
			[]string{"a:"}, 0},
		{"map delete of an absent key", []stateCmd{{key: "a", op: "delete", arg: "x"}, {key: "a", op: "show"}},
			[]string{"a:"}, 0},
		{"map clear", []stateCmd{{key: "a", op: "put", arg: "x", n: 1}, {key: "a", op: "clear-map"}, {key: "a", op: "show"}},
			[]string{"a:"}, 0},
		{"list", []stateCmd{{key: "a", op: "append", arg: "p"}, {key: "a", op: "append", arg: "q"}, {key: "a", op: "append", arg: "p"}, {key: "a", op: "show"}},
			[]string{"a: l=p,q,p"}, 1},
		{"list clear", []stateCmd{{key: "a", op: "append", arg: "p"}, {key: "a", op: "clear-list"}, {key: "a", op: "show"}},
			[]string{"a:"}, 0},
		{"clear keeps the other states of the key", []stateCmd{{key: "a", op: "set", n: 1}, {key: "a", op: "append", arg: "p"}, {key: "a", op: "clear-value"}, {key: "a", op: "show"}},
			[]string{"a: l=p"}, 1},
		{"keys are isolated", []stateCmd{
			{key: "a", op: "set", n: 1}, {key: "b", op: "set", n: 2}, {key: "a", op: "put", arg: "x", n: 1}, {key: "b", op: "append", arg: "q"},
			{key: "c", op: "show"}, {key: "a", op: "show"}, {key: "b", op: "show"},
			{key: "a", op: "clear-value"}, {key: "a", op: "clear-map"}, {key: "b", op: "show"}, {key: "a", op: "show"}},
			[]string{"c:", "a: v=1 m=x:1", "b: v=2 l=q", "b: v=2 l=q", "a:"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, out := newStateOperator(false)
			for i, c := range tt.cmds {
				if err := op.Process(Record[stateCmd]{Value: c, Time: int64(i)}, clockStart); err != nil {
					t.Fatalf("Process(%+v): %v", c, err)
				}
			}
			var got []string
			for _, r := range *out {
				got = append(got, r.Value)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("output %q, want %q", got, tt.want)
			}
			if n := op.State().Len(); n != tt.wantLen {
				t.Errorf("State().Len() = %d, want %d", n, tt.wantLen)
			}
		})
	}
}

func TestProcessEmitInheritsRecordTime(t *testing.T) {
	op, out := newStateOperator(false)
	if err := op.Process(Record[stateCmd]{Value: stateCmd{key: "a", op: "show"}, Time: 1234}, clockStart); err != nil {
		t.Fatal(err)
	}
	if len(*out) != 1 || (*out)[0].Time != 1234 || (*out)[0].Kind != Insert {
		t.Errorf("output %+v, want one insert at time 1234", *out)
	}
}

func TestTimers(t *testing.T) {
	ms := func(n int64) time.Time { return time.UnixMilli(n) }
	type popped struct {
		key string
		at  int64
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, ts *Timers[string])
		now     int64
		want    []popped
		wantLen int // timers left
	}{
		{"same key and time twice is one timer", func(_ *testing.T, ts *Timers[string]) {
			ts.Register("a", ms(10))
			ts.Register("a", ms(10))
		}, 100, []popped{{"a", 10}}, 0},
		{"order by time, then registration", func(_ *testing.T, ts *Timers[string]) {
			ts.Register("c", ms(30))
			ts.Register("b", ms(10))
			ts.Register("a", ms(10))
			ts.Register("d", ms(20))
			ts.Register("b", ms(10)) // a duplicate keeps its first place
		}, 100, []popped{{"b", 10}, {"a", 10}, {"d", 20}, {"c", 30}}, 0},
		{"only due timers pop", func(_ *testing.T, ts *Timers[string]) {
			ts.Register("a", ms(10))
			ts.Register("b", ms(20))
			ts.Register("c", ms(21))
		}, 20, []popped{{"a", 10}, {"b", 20}}, 1},
		{"delete", func(_ *testing.T, ts *Timers[string]) {
			ts.Register("a", ms(10))
			ts.Register("b", ms(10))
			ts.Register("a", ms(20))
			ts.Delete("a", ms(10))
			ts.Delete("a", ms(99)) // absent: nothing
			ts.Delete("z", ms(10)) // absent: nothing
		}, 100, []popped{{"b", 10}, {"a", 20}}, 0},
		{"registering again after a pop", func(t *testing.T, ts *Timers[string]) {
			ts.Register("a", ms(10))
			if _, _, ok := ts.PopDue(ms(10)); !ok {
				t.Fatal("no due timer")
			}
			ts.Register("a", ms(10))
		}, 10, []popped{{"a", 10}}, 0},
		{"none", func(*testing.T, *Timers[string]) {}, 100, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ts Timers[string]
			tt.setup(t, &ts)
			var got []popped
			for {
				key, at, ok := ts.PopDue(ms(tt.now))
				if !ok {
					break
				}
				got = append(got, popped{key, at.UnixMilli()})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("popped %v, want %v", got, tt.want)
			}
			if ts.Len() != tt.wantLen {
				t.Errorf("Len = %d, want %d", ts.Len(), tt.wantLen)
			}
			if _, ok := ts.Next(); ok != (tt.wantLen > 0) {
				t.Errorf("Next ok = %v with %d timers left", ok, tt.wantLen)
			}
		})
	}
}

func TestTimersNext(t *testing.T) {
	var ts Timers[int]
	if _, ok := ts.Next(); ok {
		t.Fatal("Next on no timers: ok")
	}
	ts.Register(1, time.UnixMilli(50))
	ts.Register(2, time.UnixMilli(40))
	if next, ok := ts.Next(); !ok || next.UnixMilli() != 40 {
		t.Errorf("Next = %v, %v; want 40ms", next.UnixMilli(), ok)
	}
}

func TestFireTimer(t *testing.T) {
	op, out := newStateOperator(true)
	for _, c := range []stateCmd{
		{key: "a", op: "timer", n: 20},
		{key: "b", op: "timer", n: 10},
		{key: "b", op: "timer", n: 10},
		{key: "c", op: "timer", n: 30},
		{key: "c", op: "delete-timer", n: 30},
		{key: "d", op: "timer", n: 99},
	} {
		if err := op.Process(Record[stateCmd]{Value: c}, clockStart); err != nil {
			t.Fatal(err)
		}
	}
	if next, ok := op.NextTimer(); !ok || next.UnixMilli() != 10 {
		t.Fatalf("NextTimer = %d, %v; want 10", next.UnixMilli(), ok)
	}
	now := time.UnixMilli(50)
	for {
		fired, err := op.FireTimer(now)
		if err != nil {
			t.Fatal(err)
		}
		if !fired {
			break
		}
	}
	want := []Record[string]{{Value: "timer b@10 now=50", Time: 10}, {Value: "timer a@20 now=50", Time: 20}}
	if !slices.Equal(*out, want) {
		t.Errorf("output %+v, want %+v", *out, want)
	}
	if next, ok := op.NextTimer(); !ok || next.UnixMilli() != 99 {
		t.Errorf("NextTimer = %d, %v; want 99", next.UnixMilli(), ok)
	}
	op.Reset()
	if _, ok := op.NextTimer(); ok {
		t.Error("NextTimer after Reset: ok")
	}
}

func TestFireTimerWithoutOnTimer(t *testing.T) {
	op, _ := newStateOperator(false)
	if err := op.Process(Record[stateCmd]{Value: stateCmd{key: "a", op: "timer", n: 10}}, clockStart); err != nil {
		t.Fatal(err)
	}
	fired, err := op.FireTimer(time.UnixMilli(10))
	if err == nil {
		t.Fatal("FireTimer with nil OnTimer: no error")
	}
	if !fired {
		t.Error("FireTimer with nil OnTimer: fired = false, want true (the timer was taken)")
	}
	if !strings.Contains(err.Error(), "OnTimer") {
		t.Errorf("error %q does not say OnTimer is missing", err)
	}
	if fired, err := op.FireTimer(time.UnixMilli(10)); fired || err != nil {
		t.Errorf("second FireTimer = %v, %v; want false, nil", fired, err)
	}
}

func TestKeyedStateGetAndClear(t *testing.T) {
	op, _ := newStateOperator(false)
	for _, c := range []stateCmd{{key: "a", op: "set", n: 7}, {key: "a", op: "append", arg: "p"}, {key: "b", op: "set", n: 1}} {
		if err := op.Process(Record[stateCmd]{Value: c}, clockStart); err != nil {
			t.Fatal(err)
		}
	}
	st := op.State()
	got := st.Get("a")
	if len(got) != 2 || got["v"] != 7 {
		t.Errorf("Get(a) = %v, want v=7 and l", got)
	}
	delete(got, "v") // a copy: must not change the state
	if st.Get("a")["v"] != 7 {
		t.Error("changing the map Get returned changed the state")
	}
	if st.Get("zz") != nil {
		t.Error("Get of an absent key is not nil")
	}
	st.Clear()
	if st.Len() != 0 {
		t.Errorf("Len after Clear = %d", st.Len())
	}
}

var clockStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
