package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/eddyflow/eddy/internal/admin"
)

// How a node answers GET /state/{stage} (interactive queries) for the whole cluster
// (docs/decisions-queries.md):
//
//   - A point query goes to the key's owner: the node computes the key group of the key
//     (the job's key hash) and its owner under the current placement, and answers itself
//     when it owns it, or forwards the request over HTTP to the owner's admin address
//     (from the owner's member metadata), with ?epoch= set to the placement's epoch.
//   - A scan fans out to every node of the placement (each with ?epoch=), each scans the
//     key groups it runs, and the node merges the answers in key order; it fails (503)
//     unless every key group was read exactly once.
//   - A node asked with ?epoch= answers only when that is its own placement's epoch and
//     (for a point query) it owns the key, and never forwards: so a short disagreement
//     during churn fails a query (503, try again) rather than answer from a node that is
//     not the owner, or loop. A node only ever holds the state of the key groups it owns
//     under its run's placement, and the placement and the run are read together.

// forwardTimeout bounds a forwarded state query.
const forwardTimeout = 5 * time.Second

// maxStateAnswer bounds what is read of another node's /state answer.
const maxStateAnswer = 64 << 20

// forwardClient forwards state queries. No keep-alive: a node keeps no connection (and no
// goroutine) open to another after a query.
var forwardClient = &http.Client{Timeout: forwardTimeout, Transport: &http.Transport{DisableKeepAlives: true}}

// errNoRun says a node has no run to query (it starts, or its membership changes).
var errNoRun = errors.New("no run of the job on this node now (it starts or restarts): try again")

// queryRun returns the node's placement and the state queries of its current run, read
// together.
func (n *Node) queryRun() (*Placement, admin.LocalState, string, error) {
	n.mu.Lock()
	p, run := n.placement, n.run
	n.mu.Unlock()
	if p == nil || run == nil || admin.JobState == nil {
		return nil, nil, "", errNoRun
	}
	local := admin.JobState(run)
	jobs := p.Jobs()
	if local == nil || len(jobs) != 1 {
		return nil, nil, "", fmt.Errorf("the node's run answers no state queries")
	}
	return p, local, jobs[0], nil
}

// checkEpoch refuses a forwarded request routed under another placement than p.
func checkEpoch(p *Placement, req admin.StateRequest) error {
	if req.Epoch != "" && req.Epoch != p.Epoch().String() {
		return fmt.Errorf("node %s: the request was routed under placement %s, this node has %s (membership changes): try again", p.Self(), req.Epoch, p.Epoch())
	}
	return nil
}

// QueryState answers a point query (admin.StateQuery): here when this node owns the key's
// key group, else at its owner.
func (n *Node) QueryState(ctx context.Context, stage string, req admin.StateRequest) (admin.StateView, error) {
	p, local, job, err := n.queryRun()
	if err != nil {
		return admin.StateView{}, err
	}
	if err := checkEpoch(p, req); err != nil {
		return admin.StateView{}, err
	}
	kg, _, err := local.KeyGroupOf(stage, req.Key)
	if err != nil {
		return admin.StateView{}, err
	}
	owner := p.Owner(job, kg)
	if owner == p.Self() {
		v, err := local.QueryState(ctx, stage, req)
		v.Node = owner
		return v, err
	}
	if req.Epoch != "" {
		return admin.StateView{}, fmt.Errorf("node %s does not own key group %d of %s under placement %s (%s does): try again", p.Self(), kg, job, p.Epoch(), owner)
	}
	req.Epoch = p.Epoch().String()
	var v admin.StateView
	if err := n.askPeer(ctx, owner, stage, req, &v); err != nil {
		return admin.StateView{}, err
	}
	return v, nil
}

// ScanState answers a scan (admin.StateQuery): every node scans the key groups it owns,
// and this one merges their answers.
func (n *Node) ScanState(ctx context.Context, stage string, req admin.StateRequest) (admin.ScanView, error) {
	p, local, job, err := n.queryRun()
	if err != nil {
		return admin.ScanView{}, err
	}
	if err := checkEpoch(p, req); err != nil {
		return admin.ScanView{}, err
	}
	if err := local.CheckScan(stage, req); err != nil {
		return admin.ScanView{}, err // a bad request fails here, not on every node
	}
	if req.Epoch != "" {
		v, err := local.ScanState(ctx, stage, req)
		v.Nodes = []string{p.Self()}
		return v, err
	}
	req.Epoch = p.Epoch().String()
	nodes := p.Nodes()
	parts := make([]admin.ScanView, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if node == p.Self() {
				parts[i], errs[i] = local.ScanState(ctx, stage, req)
				parts[i].Nodes = []string{node}
				return
			}
			errs[i] = n.askPeer(ctx, node, stage, req, &parts[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return admin.ScanView{}, err
	}
	limit := req.Limit
	if limit == 0 {
		limit = admin.DefaultScanLimit
	}
	v := admin.MergeScans(stage, parts, limit)
	want := p.KeyGroups(job)
	if !allKeyGroups(v.KeyGroups, want) {
		return admin.ScanView{}, fmt.Errorf("scan %q: the nodes read key groups %v, not each of 0..%d once (the placement changed): try again", stage, v.KeyGroups, want-1)
	}
	return v, nil
}

// allKeyGroups reports whether sorted kgs is 0, 1, …, n-1.
func allKeyGroups(kgs []int, n int) bool {
	if len(kgs) != n {
		return false
	}
	for i, kg := range kgs {
		if kg != i {
			return false
		}
	}
	return true
}

// askPeer sends req for stage to node's admin endpoint and decodes its answer into v; an
// error answer comes back as an *admin.StatusError with the node's status.
func (n *Node) askPeer(ctx context.Context, node, stage string, req admin.StateRequest, v any) error {
	addr := ""
	for _, m := range n.members.Members() {
		if m.NodeID == node {
			addr = m.AdminAddr
		}
	}
	if addr == "" {
		return fmt.Errorf("node %s has no admin address to forward the query to (start it with an AdminAddr)", node)
	}
	u := "http://" + addr + "/state/" + url.PathEscape(stage) + "?" + req.Query().Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("forward the query to node %s: %w", node, err)
	}
	resp, err := forwardClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("forward the query to node %s: %w", node, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxStateAnswer)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(body).Decode(&e)
		return &admin.StatusError{Code: resp.StatusCode, Msg: fmt.Sprintf("node %s: %s", node, e.Error)}
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("the answer of node %s: %w", node, err)
	}
	return nil
}
