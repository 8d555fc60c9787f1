package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/memberlist"

	"github.com/eddyflow/eddy/graph"
)

// Fingerprint returns the fingerprint of a job's physical plan (graph.Graph.Plan, or a built
// job's Describe) with keyGroups key groups: 16 hex digits of a SHA-256 over the job's
// name, its stages (name, kind, record type, inputs, key), its vertices (the stages fused
// into each, and how many instances: source splits, key groups), the channels between them
// and their partitioning, and the key-group count placement uses. Two nodes with the same
// fingerprint route every record the same way; two with different ones would send records
// to instances the other does not have, or to other key groups, so a node refuses to meet
// a node with another fingerprint (Meta.Plan). User functions are not in it: a map that
// differs only in its code has the same plan.
func Fingerprint(plan graph.Description, keyGroups int) string {
	b, err := json.Marshal(struct {
		Plan      graph.Description `json:"plan"`
		KeyGroups int               `json:"key_groups"`
	}{plan, keyGroups})
	if err != nil { // cannot happen: a Description is strings and ints
		panic(fmt.Sprintf("cluster: fingerprint of plan %s: %v", plan.Job, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// PlanMismatchError is the error of a node that met a node running another plan: Join
// returns it (and StartNode and RunGraph with it), and the node runs nothing.
type PlanMismatchError struct {
	// Peer is the other node's NodeID, PeerAddr its gossip address.
	Peer, PeerAddr string
	// PeerPlan is the other node's plan fingerprint, Plan this node's.
	PeerPlan, Plan string
}

func (e *PlanMismatchError) Error() string {
	return fmt.Sprintf("node %q (%s) runs plan %s and this node runs plan %s: every node must run the same graph "+
		"with the same job options (stages, parallelism, key groups, partitioning)", e.Peer, e.PeerAddr, e.PeerPlan, e.Plan)
}

// planCheck refuses, in memberlist's merge (a join, either side) and alive (gossip about
// a node) callbacks, every node whose metadata names another plan than self's. A node with
// no plan in its metadata (one started without RunGraph, such as cmd/eddy's) is not
// checked. It keeps the last mismatch, for Join to return as a *PlanMismatchError:
// memberlist flattens the errors it is given into text.
type planCheck struct {
	self, plan string
	last       *atomic.Pointer[PlanMismatchError]
}

func (c planCheck) check(n *memberlist.Node) error {
	if n.Name == c.self || len(n.Meta) == 0 {
		return nil
	}
	var meta Meta
	if err := json.Unmarshal(n.Meta, &meta); err != nil {
		return fmt.Errorf("node %q: metadata does not decode: %w", n.Name, err)
	}
	if meta.Plan == "" || meta.Plan == c.plan {
		return nil
	}
	e := &PlanMismatchError{Peer: n.Name, PeerAddr: n.Address(), PeerPlan: meta.Plan, Plan: c.plan}
	c.last.Store(e)
	return e
}

// NotifyMerge implements memberlist.MergeDelegate: a join with a node of another plan fails.
func (c planCheck) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := c.check(n); err != nil {
			return err
		}
	}
	return nil
}

// NotifyAlive implements memberlist.AliveDelegate: gossip about a node of another plan is
// ignored, so it never becomes a member.
func (c planCheck) NotifyAlive(n *memberlist.Node) error { return c.check(n) }

var (
	_ memberlist.MergeDelegate = planCheck{}
	_ memberlist.AliveDelegate = planCheck{}
)
