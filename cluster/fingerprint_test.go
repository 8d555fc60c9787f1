package cluster

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// plannedGraph returns a counting graph whose plan depends on how it is keyed.
func plannedGraph(byKey bool) *graph.Graph {
	g := graph.New("counts")
	nums := graph.From(g, stream.Generate(100, func(i int64) int64 { return i }), graph.Name("numbers"))
	if !byKey {
		nums = graph.Map(nums, func(i int64) int64 { return i * 2 }, graph.Name("double"))
	}
	graph.Count(graph.KeyBy(nums, func(i int64) int64 { return i % 7 }), graph.Name("count")).
		To(stream.NewCollectSink[stream.KV[int64, int64]](), graph.Name("out"))
	return g
}

func TestFingerprint(t *testing.T) {
	plan := func(g *graph.Graph, opts ...graph.JobOption) graph.Description {
		t.Helper()
		d, err := g.Plan(opts...)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := Fingerprint(plan(plannedGraph(true), graph.Parallelism(2), graph.MaxKeyGroups(32)), 32)
	if len(base) != 16 {
		t.Errorf("fingerprint %q: want 16 hex digits", base)
	}
	for _, tt := range []struct {
		name string
		fp   string
		same bool
	}{
		{"the same graph and options", Fingerprint(plan(plannedGraph(true), graph.Parallelism(2), graph.MaxKeyGroups(32)), 32), true},
		{"options that do not change the plan", Fingerprint(plan(plannedGraph(true), graph.Parallelism(2), graph.MaxKeyGroups(32), graph.BatchSize(7)), 32), true},
		{"another stage", Fingerprint(plan(plannedGraph(false), graph.Parallelism(2), graph.MaxKeyGroups(32)), 32), false},
		{"other parallelism", Fingerprint(plan(plannedGraph(true), graph.Parallelism(3), graph.MaxKeyGroups(32)), 32), false},
		{"other key groups", Fingerprint(plan(plannedGraph(true), graph.Parallelism(2), graph.MaxKeyGroups(64)), 64), false},
		{"other placement key groups", Fingerprint(plan(plannedGraph(true), graph.Parallelism(2), graph.MaxKeyGroups(32)), 128), false},
	} {
		if got := tt.fp == base; got != tt.same {
			t.Errorf("%s: fingerprint %s against %s: same = %v, want %v", tt.name, tt.fp, base, got, tt.same)
		}
	}
}

// A node whose plan differs cannot join: Join says which node runs which plan, and the
// seed does not count it as a member.
func TestJoinRefusesAnotherPlan(t *testing.T) {
	joinPlan := func(id, plan string, seeds ...string) (*Members, error) {
		m, err := Join(t.Context(), Config{NodeID: id, Seeds: seeds, Profile: Loopback, Meta: Meta{Plan: plan}, Logger: testLogger(t)})
		if err == nil {
			t.Cleanup(func() { _ = m.Shutdown() })
		}
		return m, err
	}
	seed, err := joinPlan("n1", "aaaaaaaaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	_, err = joinPlan("n3", "bbbbbbbbbbbbbbbb", seed.Self().Addr)
	var mismatch *PlanMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("a node with another plan: Join returned %v, want a *PlanMismatchError", err)
	}
	for _, want := range []string{`node "n1"`, seed.Self().Addr, "runs plan aaaaaaaaaaaaaaaa", "this node runs plan bbbbbbbbbbbbbbbb"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := joinPlan("n2", "aaaaaaaaaaaaaaaa", seed.Self().Addr); err != nil {
		t.Fatalf("a node with the same plan: %v", err)
	}
	waitFor(t, "n2 in the seed's members", 5*time.Second, func() bool { return len(seed.Members()) == 2 })
	if ids := memberIDs(seed.Members()); slices.Contains(ids, "n3") {
		t.Errorf("the seed's members %v include n3, which runs another plan", ids)
	}
	// A node that states no plan (cmd/eddy's) is not checked.
	if _, err := joinPlan("n4", "", seed.Self().Addr); err != nil {
		t.Fatalf("a node without a plan: %v", err)
	}
}
