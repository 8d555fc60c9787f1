package graph_test

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// item is a row of the table that AggregateTable regroups: its group and an amount.
type item struct {
	Group  string `json:"group"`
	Amount int    `json:"amount"`
}

// sumAmounts sums the amounts of a group's rows; it retracts, as a table's updates need.
type sumAmounts struct{}

func (sumAmounts) Zero() int                   { return 0 }
func (sumAmounts) Add(acc int, v item) int     { return acc + v.Amount }
func (sumAmounts) Retract(acc int, v item) int { return acc - v.Amount }
func (sumAmounts) Result(acc int) int          { return acc }

// tableScript is one script's job and the test's own model of its input tables.
type tableScript struct {
	h         *actortest.StageHarness[stream.KV[string, string]]
	right     *actortest.Input[stream.KV[string, string]]
	out       *actortest.Output[stream.KV[string, string]]
	kind      string
	left      map[string]string // the model: the rows pushed so far
	rightRows map[string]string
	applied   map[string]string // the job's output changelog, applied
}

// TestTableScripts runs testdata/tables/*: changelogs pushed into tables, the joined or
// aggregated table's changelog printed, and after every step that changelog, applied to a
// table, checked against the join or aggregation recomputed from scratch over the rows.
//
//	build join inner|left|outer   |   build aggregate
//	upsert left|right KEY VALUE   (aggregate: upsert left KEY GROUP:AMOUNT)
//	delete left|right KEY
func TestTableScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/tables", func(t *testing.T, path string) {
		var s *tableScript
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "build":
				s = newTableScript(t, d)
				return ""
			case "upsert", "delete":
				return s.change(t, d)
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
				return ""
			}
		})
	})
}

func newTableScript(t *testing.T, d *datadriven.TestData) *tableScript {
	h := actortest.NewStageHarness[stream.KV[string, string]](t)
	s := &tableScript{h: h, left: map[string]string{}, rightRows: map[string]string{}, applied: map[string]string{}}
	if len(d.CmdArgs) == 0 {
		t.Fatalf("%s: build join KIND | build aggregate", d.Pos)
	}
	left := graph.ToTable(h.Input())
	switch s.kind = d.CmdArgs[0].Key; s.kind {
	case "join":
		if len(d.CmdArgs) != 2 {
			t.Fatalf("%s: build join inner|left|outer", d.Pos)
		}
		kind, ok := map[string]graph.JoinKind{"inner": graph.InnerJoin, "left": graph.LeftJoin, "outer": graph.OuterJoin}[d.CmdArgs[1].Key]
		if !ok {
			t.Fatalf("%s: unknown join kind %q", d.Pos, d.CmdArgs[1].Key)
		}
		s.kind = d.CmdArgs[1].Key
		s.right = actortest.AddInput[stream.KV[string, string]](h, "right")
		joined := graph.JoinTables(left, graph.ToTable(s.right.Stream()), kind, joinRows)
		s.out = actortest.Collect(h, joined.ToStream())
	case "aggregate":
		if len(d.CmdArgs) != 1 {
			t.Fatalf("%s: build aggregate takes no arguments", d.Pos)
		}
		items := graph.Map(left.ToStream(), func(kv stream.KV[string, string]) stream.KV[string, item] {
			return stream.KV[string, item]{Key: kv.Key, Value: parseItem(t, kv.Value)}
		})
		sums := graph.AggregateTable(graph.ToTable(items), func(_ string, it item) string { return it.Group }, sumAmounts{})
		s.out = actortest.Collect(h, graph.Map(sums.ToStream(), func(kv stream.KV[string, int]) stream.KV[string, string] {
			return stream.KV[string, string]{Key: kv.Key, Value: strconv.Itoa(kv.Value)}
		}))
	default:
		t.Fatalf("%s: unknown table job %q", d.Pos, s.kind)
	}
	return s
}

func joinRows(a string, hasA bool, b string, hasB bool) string {
	if !hasA {
		a = "-"
	}
	if !hasB {
		b = "-"
	}
	return a + "|" + b
}

func parseItem(t *testing.T, s string) item {
	g, amount, ok := strings.Cut(s, ":")
	n, err := strconv.Atoi(amount)
	if !ok || err != nil {
		t.Fatalf("item %q: want GROUP:AMOUNT", s)
	}
	return item{Group: g, Amount: n}
}

func (s *tableScript) change(t *testing.T, d *datadriven.TestData) string {
	want := 3
	if d.Cmd == "delete" {
		want = 2
	}
	if len(d.CmdArgs) != want {
		t.Fatalf("%s: %s left|right KEY%s", d.Pos, d.Cmd, map[bool]string{true: " VALUE"}[want == 3])
	}
	side, key := d.CmdArgs[0].Key, d.CmdArgs[1].Key
	rows, push := s.left, func(kv stream.KV[string, string], retract bool) {
		if retract {
			s.h.Retract(kv, 0)
		} else {
			s.h.Push(kv, 0)
		}
	}
	switch {
	case side == "right" && s.right != nil:
		rows = s.rightRows
		push = func(kv stream.KV[string, string], retract bool) {
			if retract {
				s.right.Retract(kv, 0)
			} else {
				s.right.Push(kv, 0)
			}
		}
	case side != "left":
		t.Fatalf("%s: no table %q", d.Pos, side)
	}
	if d.Cmd == "delete" {
		push(stream.KV[string, string]{Key: key}, true)
		delete(rows, key)
	} else {
		push(stream.KV[string, string]{Key: key, Value: d.CmdArgs[2].Key}, false)
		rows[key] = d.CmdArgs[2].Key
	}
	s.h.Flush()
	var b strings.Builder
	for _, r := range s.out.Take() {
		mark := "+"
		if r.Kind == stream.Retract {
			mark = "-"
			if s.applied[r.Value.Key] != r.Value.Value {
				t.Errorf("%s: retraction of %s=%s, but the table holds %q", d.Pos, r.Value.Key, r.Value.Value, s.applied[r.Value.Key])
			}
			delete(s.applied, r.Value.Key)
		} else {
			if old, ok := s.applied[r.Value.Key]; ok {
				t.Errorf("%s: insert of %s=%s over %s, with no retraction first", d.Pos, r.Value.Key, r.Value.Value, old)
			}
			s.applied[r.Value.Key] = r.Value.Value
		}
		fmt.Fprintf(&b, "%s %s=%s\n", mark, r.Value.Key, r.Value.Value)
	}
	if want := s.recompute(t); !maps.Equal(s.applied, want) {
		t.Errorf("%s: the changelog applied gives %v; recomputed from the rows: %v", d.Pos, rowsOf(s.applied), rowsOf(want))
	}
	return b.String()
}

// recompute is the join or aggregation of the model's rows, from scratch.
func (s *tableScript) recompute(t *testing.T) map[string]string {
	out := map[string]string{}
	switch s.kind {
	case "aggregate":
		sums := map[string]int{}
		for _, v := range s.left {
			it := parseItem(t, v)
			sums[it.Group] += it.Amount
		}
		for g, n := range sums {
			out[g] = strconv.Itoa(n)
		}
	default:
		keys := map[string]bool{}
		for k := range s.left {
			keys[k] = true
		}
		for k := range s.rightRows {
			keys[k] = true
		}
		for k := range keys {
			a, hasA := s.left[k]
			b, hasB := s.rightRows[k]
			if hasA && hasB || s.kind == "left" && hasA || s.kind == "outer" {
				out[k] = joinRows(a, hasA, b, hasB)
			}
		}
	}
	return out
}

func rowsOf(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}
