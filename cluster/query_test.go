// Three nodes in one process need three Proto.Actor remotes, and remote.Start sets grpc's
// global logger every time while the first one's server reads it: a data race inside the
// library, not Eddy's (see actor/cluster_test.go). Under -race, TestQueryNode runs the same
// queries on one node.

//go:build !race

package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/internal/admin"
	"github.com/eddyflow/eddy/persistence"
)

// The acceptance test of interactive queries on a cluster: three nodes run a keyed sum over
// known input, the source held by a gate once all of it is in; then 1,000 keys are queried
// through ONE node's admin endpoint, and each key's value is the sum computed here, whichever
// node owns it. Scans through that node read every node's key groups.
func TestQueryClusterThroughOneNode(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fence := t.TempDir()

	want := wantSums(t)

	// The sink sees each key's latest sum: when it has seen every final sum, every record
	// has been added to the state, and the gated source sends no more.
	sums := &latestSums{m: map[string]int64{}}
	build := spendJob(store, sums, quiet)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var nodes []*cluster.Node
	for i := range 3 {
		cfg := cluster.NodeConfig{
			Membership: cluster.Config{NodeID: fmt.Sprintf("n%d", i+1), Profile: cluster.Loopback, Logger: quiet},
			AdminAddr:  "127.0.0.1:0", Settle: 300 * time.Millisecond, FenceDir: fence, Expect: 3, Logger: quiet,
		}
		if i > 0 {
			cfg.Membership.Seeds = []string{nodes[0].Self().Addr}
		}
		n, err := cluster.StartNode(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	runs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { runs <- n.Run(ctx, queryJob, queryKeyGroups, build) }()
	}
	defer func() {
		cancel()
		for range nodes {
			if err := <-runs; err != nil && ctx.Err() == nil {
				t.Errorf("run: %v", err)
			}
		}
	}()

	// Quiescent: every final sum went out, and two more checkpoints completed after.
	deadline := time.Now().Add(60 * time.Second)
	for !sums.equal(want) {
		select {
		case err := <-runs:
			runs <- err // for the deferred wait
			t.Fatalf("a node's run ended before the input was summed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not sum all %d records within 60s", queryRecords)
		}
		time.Sleep(10 * time.Millisecond)
	}
	newest := func() uint64 {
		ids, err := store.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Max(append(ids, 0))
	}
	for after := newest(); newest() < after+2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no two checkpoints completed after the input (newest %d)", after)
		}
	}

	p := nodes[0].Placement()
	base := "http://" + nodes[0].AdminAddr()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	// 1,000 point queries through n1: each the expected sum, answered by the key's owner.
	answeredBy := map[string]int{}
	for key, sum := range want {
		var v admin.StateView
		if code := getState(t, client, base+"/state/spend?key="+url.QueryEscape(key), &v); code != 200 {
			t.Fatalf("GET /state/spend?key=%s: %d", key, code)
		}
		var got int64
		if err := json.Unmarshal(v.Value, &got); err != nil || got != sum {
			t.Errorf("key %s: value %s (%v), want %d", key, v.Value, err, sum)
		}
		if owner := p.Owner(queryJob, v.KeyGroup); v.Node != owner || v.Key != key || v.Stage != "spend" {
			t.Errorf("key %s: answered %+v, want node %s (owner of key group %d)", key, v, owner, v.KeyGroup)
		}
		if v.Checkpoint < 1 {
			t.Errorf("key %s: reflects checkpoint %d, want one completed before the query", key, v.Checkpoint)
		}
		answeredBy[v.Node]++
	}
	for _, id := range p.Nodes() {
		if answeredBy[id] == 0 {
			t.Errorf("no key owned by %s among the 1,000 (answers by node: %v)", id, answeredBy)
		}
	}
	t.Logf("answers by owner: %v", answeredBy)

	// Scans through n1 read the key groups of all three nodes and merge in key order.
	sorted := make([]string, 0, len(want))
	for k := range want {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, tc := range []struct {
		query string
		keys  []string
		more  bool
	}{
		{"prefix=user-00&limit=200", sorted[:100], false},
		{"from=user-0500&to=user-0510", sorted[500:510], false},
		{"limit=5", sorted[:5], true},
		{"prefix=user-09&from=user-0995", sorted[995:], false},
	} {
		var v admin.ScanView
		if code := getState(t, client, base+"/state/spend?"+tc.query, &v); code != 200 {
			t.Fatalf("scan %s: %d", tc.query, code)
		}
		var keys []string
		for _, e := range v.Entries {
			var k string
			var sum int64
			if json.Unmarshal(e.Key, &k) != nil || json.Unmarshal(e.Value, &sum) != nil || sum != want[k] {
				t.Errorf("scan %s: entry %s = %s, want %d", tc.query, e.Key, e.Value, want[k])
			}
			keys = append(keys, k)
		}
		if !slices.Equal(keys, tc.keys) || v.More != tc.more {
			t.Errorf("scan %s: keys %v (more %v), want %v (more %v)", tc.query, keys, v.More, tc.keys, tc.more)
		}
		if len(v.KeyGroups) != queryKeyGroups || !slices.Equal(v.Nodes, p.Nodes()) || v.Checkpoint < 1 {
			t.Errorf("scan %s: read key groups %v from nodes %v at checkpoint %d; want all %d from %v", tc.query, v.KeyGroups, v.Nodes, v.Checkpoint, queryKeyGroups, p.Nodes())
		}
	}

	// Bad requests fail the same through any node; a forwarded request that reaches a node
	// that does not own the key, or under another placement, is refused, never answered
	// from that node's state.
	var other string // a key n2 does not own
	for key := range want {
		if kg, ok := keyGroupOf(t, client, base, key); ok && p.Owner(queryJob, kg) != "n2" {
			other = key
			break
		}
	}
	base2 := "http://" + nodes[1].AdminAddr()
	for _, tc := range []struct {
		url  string
		code int
	}{
		{base + "/state/nope?key=user-0001", 404},
		{base + "/state/purchases?key=user-0001", 400},
		{base + "/state/spend?key=user-0001&prefix=user", 400},
		{base + "/state/spend?limit=100000", 400},
		{base + "/state/spend?limit=-1", 400},
		{base + "/state/spend?key=nobody", 404},
		{base2 + "/state/spend?key=" + other + "&epoch=" + p.Epoch().String(), 503},
		{base2 + "/state/spend?key=" + other + "&epoch=0000000000000001", 503},
		{base2 + "/state/spend?prefix=user&epoch=0000000000000001", 503},
	} {
		var e map[string]string
		if code := getState(t, client, tc.url, &e); code != tc.code || e["error"] == "" {
			t.Errorf("GET %s: %d %v, want %d with an error", tc.url, code, e, tc.code)
		}
	}
}
