package cluster

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/eddyflow/eddy/actor"
)

func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", i+1)
	}
	return ids
}

func mustPlacement(t testing.TB, self string, nodes []string, opts ...PlacementOption) *Placement {
	t.Helper()
	p, err := NewPlacement(self, nodes, opts...)
	if err != nil {
		t.Fatalf("NewPlacement(%s, %v): %v", self, nodes, err)
	}
	return p
}

// ownerList returns the owner of each key group of job.
func ownerList(p *Placement, job string, keyGroups int) []string {
	owners := make([]string, keyGroups)
	for kg := range owners {
		owners[kg] = p.Owner(job, kg)
	}
	return owners
}

func TestPlacementBoundedLoads(t *testing.T) {
	for _, tc := range []struct {
		nodes, keyGroups int
		load             float64
	}{
		{3, 128, DefaultLoad},
		{3, 128, 1.1},
		{4, 128, DefaultLoad},
		{5, 128, DefaultLoad},
		{16, 128, DefaultLoad},
		{1, 128, DefaultLoad},
		{3, 1024, DefaultLoad},
		{3, 3, DefaultLoad},
		{7, 4, DefaultLoad}, // fewer key groups than nodes: at most one each
	} {
		for _, job := range []string{"orders", "clicks", ""} {
			t.Run(fmt.Sprintf("%d nodes %d key groups load %v job %q", tc.nodes, tc.keyGroups, tc.load, job), func(t *testing.T) {
				p := mustPlacement(t, "node-1", nodeIDs(tc.nodes), Job(job, tc.keyGroups), Load(tc.load))
				bound := int(math.Ceil(float64(tc.keyGroups) / float64(tc.nodes) * tc.load))
				total := 0
				for node, kgs := range p.Table(job, tc.keyGroups) {
					if len(kgs) > bound {
						t.Errorf("%s owns %d key groups, more than its bound %d", node, len(kgs), bound)
					}
					total += len(kgs)
				}
				if total != tc.keyGroups {
					t.Errorf("the table holds %d key groups, want %d", total, tc.keyGroups)
				}
			})
		}
	}
}

func TestPlacementNodeJoins(t *testing.T) {
	const keyGroups = 128
	for _, names := range [][]string{
		{"node-1", "node-2", "node-3", "node-4"},
		{"eddy-0.eddy", "eddy-1.eddy", "eddy-2.eddy", "eddy-3.eddy"},
		{"a", "b", "c", "d"},
		{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.7"},
	} {
		before := mustPlacement(t, names[0], names[:3])
		after := mustPlacement(t, names[0], names)
		moved, toNew := 0, 0
		ob, oa := ownerList(before, "orders", keyGroups), ownerList(after, "orders", keyGroups)
		for kg := range ob {
			if ob[kg] != oa[kg] {
				moved++
				if oa[kg] == names[3] {
					toNew++
				}
			}
		}
		t.Logf("%v: adding %s moved %d of %d key groups (%.1f%%; %d of them to %s, whose even share is %d)",
			names[:3], names[3], moved, keyGroups, 100*float64(moved)/keyGroups, toNew, names[3], keyGroups/4)
		if moved > keyGroups*40/100 {
			t.Errorf("%v: adding %s moved %d of %d key groups, more than 40%%", names[:3], names[3], moved, keyGroups)
		}
		if toNew == 0 {
			t.Errorf("%v: %s took no key group", names[:3], names[3])
		}
	}
}

func TestPlacementSameEverywhere(t *testing.T) {
	lists := [][]string{
		{"node-1", "node-2", "node-3", "node-4"},
		{"node-4", "node-3", "node-2", "node-1"},
		{"node-3", "node-1", "node-4", "node-2", "node-3"}, // a duplicate counts once
	}
	opts := []PlacementOption{Job("orders", 128), Job("clicks", 32)}
	want := mustPlacement(t, "node-1", lists[0], opts...)
	for _, nodes := range lists {
		for _, self := range nodeIDs(4) {
			p := mustPlacement(t, self, nodes, opts...)
			if p.Epoch() != want.Epoch() {
				t.Errorf("%s with nodes %v: epoch %v, want %v", self, nodes, p.Epoch(), want.Epoch())
			}
			for _, job := range []string{"orders", "clicks", "not named"} {
				kgs := p.KeyGroups(job)
				if got, w := p.Table(job, kgs), want.Table(job, kgs); !maps.EqualFunc(got, w, slices.Equal) {
					t.Errorf("%s with nodes %v: job %q table %v, want %v", self, nodes, job, got, w)
				}
			}
			// Node is "" exactly where self owns the identity, and the owner elsewhere;
			// the stage plays no part.
			for kg := range 128 {
				owner := want.Owner("orders", kg)
				wantNode := owner
				if owner == self {
					wantNode = ""
				}
				for _, stage := range []string{"source", "map", "window"} {
					if got := p.Node(actor.Identity{Job: "orders", Stage: stage, Index: kg}); got != wantNode {
						t.Fatalf("%s: Node(orders/%s/%d) = %q, want %q", self, stage, kg, got, wantNode)
					}
				}
			}
		}
	}
	if got := want.KeyGroups("not named"); got != 128 {
		t.Errorf("KeyGroups of a job not named = %d, want the default 128", got)
	}
	if got := want.Jobs(); !slices.Equal(got, []string{"clicks", "orders"}) {
		t.Errorf("Jobs() = %v", got)
	}
}

func TestPlacementIndexBeyondKeyGroups(t *testing.T) {
	p := mustPlacement(t, "node-1", nodeIDs(3), Job("orders", 16))
	for i := range 64 {
		if got, want := p.Owner("orders", i), p.Owner("orders", i%16); got != want {
			t.Errorf("Owner(orders, %d) = %s, want the owner of key group %d, %s", i, got, i%16, want)
		}
	}
	if p.Owner("orders", -1) == "" {
		t.Error("Owner of a negative index is empty")
	}
}

func TestPlacementJobsSpread(t *testing.T) {
	// Key group 0 (and split 0) of different jobs does not always land on one node.
	p := mustPlacement(t, "node-1", nodeIDs(3))
	seen := map[string]bool{}
	for j := range 20 {
		seen[p.Owner(fmt.Sprintf("job-%d", j), 0)] = true
	}
	if len(seen) < 2 {
		t.Errorf("key group 0 of 20 jobs is always on %v", seen)
	}
}

func TestPlacementEpoch(t *testing.T) {
	three := mustPlacement(t, "node-1", nodeIDs(3))
	for _, tc := range []struct {
		name  string
		p     *Placement
		equal bool
	}{
		{"same members", mustPlacement(t, "node-2", []string{"node-3", "node-2", "node-1"}), true},
		{"a node joined", mustPlacement(t, "node-1", nodeIDs(4)), false},
		{"a node left", mustPlacement(t, "node-1", nodeIDs(2)), false},
		{"a node replaced", mustPlacement(t, "node-1", []string{"node-1", "node-2", "node-9"}), false},
		{"another load", mustPlacement(t, "node-1", nodeIDs(3), Load(1.5)), false},
		{"other key groups", mustPlacement(t, "node-1", nodeIDs(3), DefaultKeyGroups(256)), false},
		{"a job named", mustPlacement(t, "node-1", nodeIDs(3), Job("orders", 64)), false},
	} {
		if got := tc.p.Epoch() == three.Epoch(); got != tc.equal {
			t.Errorf("%s: epoch %v against %v: equal = %v, want %v", tc.name, tc.p.Epoch(), three.Epoch(), got, tc.equal)
		}
	}
	var e Epoch
	b, _ := three.Epoch().MarshalText()
	if err := e.UnmarshalText(b); err != nil || e != three.Epoch() {
		t.Errorf("epoch %v through text %q: %v, %v", three.Epoch(), b, e, err)
	}
}

func TestPlacementErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		self  string
		nodes []string
		opts  []PlacementOption
		want  string
	}{
		{"no nodes", "node-1", nil, nil, "no nodes"},
		{"self missing", "node-9", nodeIDs(3), nil, `self "node-9" is not one of the nodes`},
		{"load 1", "node-1", nodeIDs(3), []PlacementOption{Load(1)}, "Load is 1, want a finite number above 1"},
		{"load NaN", "node-1", nodeIDs(3), []PlacementOption{Load(math.NaN())}, "want a finite number above 1"},
		{"negative key groups", "node-1", nodeIDs(3), []PlacementOption{DefaultKeyGroups(-1)}, "DefaultKeyGroups is -1"},
		{"job without key groups", "node-1", nodeIDs(3), []PlacementOption{Job("orders", 0)}, `job "orders" has 0 key groups`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPlacement(tc.self, tc.nodes, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPlacement: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func ExamplePlacement() {
	members := []string{"node-2", "node-1", "node-3"} // as Members.Members lists them
	p, err := NewPlacement("node-1", members, Job("orders", 12))
	if err != nil {
		panic(err)
	}
	table := p.Table("orders", 12)
	for _, node := range p.Nodes() {
		fmt.Println(node, table[node])
	}
	// Every stage of a key group runs on one node; Node says "" when it is this one.
	for _, kg := range []int{0, 5} {
		for _, stage := range []string{"window", "sink"} {
			fmt.Printf("orders/%s/%d: %q\n", stage, kg, p.Node(actor.Identity{Job: "orders", Stage: stage, Index: kg}))
		}
	}
	// Output:
	// node-1 [5 6 8 11]
	// node-2 [0 3 4 9 10]
	// node-3 [1 2 7]
	// orders/window/0: "node-2"
	// orders/sink/0: "node-2"
	// orders/window/5: ""
	// orders/sink/5: ""
}
