package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/eddyflow/eddy/actor"
)

// peer is an AdminSource of a node that runs some of the instances of a job.
type peer struct {
	members []Member
	stats   []actor.StageStats
}

func (p *peer) Members() []Member         { return p.members }
func (p *peer) Placement() *Placement     { return nil }
func (p *peer) Stats() []actor.StageStats { return p.stats }

// share returns stats as node `node` of `nodes` sees them: it runs the instances i with
// i % nodes == node; the others read 0.
func share(stats []actor.StageStats, node, nodes int) []actor.StageStats {
	out := make([]actor.StageStats, len(stats))
	for i, s := range stats {
		c := s
		c.In, c.Out, c.DeadLetters, c.Late = 0, 0, 0, 0
		c.PerInstance = make([]actor.InstanceStats, len(s.PerInstance))
		for j, is := range s.PerInstance {
			c.PerInstance[j] = actor.InstanceStats{Index: j}
			if j%nodes == node {
				c.PerInstance[j] = is
				c.In += is.In
				c.Out += is.Out
				c.DeadLetters += is.DeadLetters
				c.Late += is.Late
			}
		}
		out[i] = c
	}
	return out
}

// Any node answers for the whole cluster: /cluster/stages asks every member and adds up.
func TestAdminClusterStages(t *testing.T) {
	whole := wordcountStats(t)
	a, b := &peer{stats: share(whole, 0, 2)}, &peer{stats: share(whole, 1, 2)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srvA, err := ServeAdmin(ctx, "127.0.0.1:0", AdminHandler(a))
	if err != nil {
		t.Fatal(err)
	}
	defer srvA.Close()
	srvB, err := ServeAdmin(ctx, "127.0.0.1:0", AdminHandler(b))
	if err != nil {
		t.Fatal(err)
	}
	defer srvB.Close()
	members := []Member{
		{NodeID: "node-1", Meta: Meta{AdminAddr: srvA.Addr().String()}},
		{NodeID: "node-2", Meta: Meta{AdminAddr: srvB.Addr().String()}},
	}
	a.members, b.members = members, members

	resp, err := http.Get("http://" + srvB.Addr().String() + "/cluster/stages")
	if err != nil {
		t.Fatal(err)
	}
	var got []StageView
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Eddy-Unreachable") != "" {
		t.Fatalf("/cluster/stages: %v %s %q", err, resp.Status, resp.Header.Get("X-Eddy-Unreachable"))
	}
	if len(got) != len(whole) {
		t.Fatalf("%d stages, want %d", len(got), len(whole))
	}
	for i, s := range got {
		w := whole[i]
		if s.Stage != w.Stage || s.In != w.In || s.Out != w.Out || len(s.PerInstance) != len(w.PerInstance) {
			t.Errorf("stage %s: in %d out %d, %d instances; want %s in %d out %d, %d", s.Stage, s.In, s.Out, len(s.PerInstance), w.Stage, w.In, w.Out, len(w.PerInstance))
			continue
		}
		for j, is := range s.PerInstance {
			if is.In != w.PerInstance[j].In || is.Out != w.PerInstance[j].Out {
				t.Errorf("%s instance %d: in %d out %d, want %d and %d", s.Stage, j, is.In, is.Out, w.PerInstance[j].In, w.PerInstance[j].Out)
			}
		}
	}

	// A node that stops answering is named, and the rest still adds up.
	if err := srvA.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get("http://" + srvB.Addr().String() + "/cluster/stages")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if u := resp.Header.Get("X-Eddy-Unreachable"); u != "node-1" {
		t.Errorf("unreachable %q, want node-1", u)
	}
}
