package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/admin"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

const (
	queryJob       = "spend"
	queryKeys      = 1000
	queryRecords   = 20_000
	queryKeyGroups = 32
)

// purchase is record i of the queried job: user (i·7919 mod 1000) spends i mod 13 + 1.
func purchase(i int64) stream.KV[string, int64] {
	return stream.KV[string, int64]{Key: fmt.Sprintf("user-%04d", (i*7919)%queryKeys), Value: i%13 + 1}
}

// amountSum sums the amounts of a user's purchases.
type amountSum struct{}

func (amountSum) Zero() int64                                     { return 0 }
func (amountSum) Add(acc int64, p stream.KV[string, int64]) int64 { return acc + p.Value }
func (amountSum) Result(acc int64) int64                          { return acc }

// latestSums is what the sink of spendJob saw last per key.
type latestSums struct {
	mu sync.Mutex
	m  map[string]int64
}

// equal reports whether the sink saw exactly want.
func (s *latestSums) equal(want map[string]int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) != len(want) {
		return false
	}
	for k, v := range want {
		if s.m[k] != v {
			return false
		}
	}
	return true
}

// wantSums computes, without Eddy, each user's spend over the job's input.
func wantSums(t *testing.T) map[string]int64 {
	want := map[string]int64{}
	for i := range int64(queryRecords) {
		p := purchase(i)
		want[p.Key] += p.Value
	}
	if len(want) != queryKeys {
		t.Fatalf("the input has %d keys, want %d", len(want), queryKeys)
	}
	return want
}

// spendJob builds the queried job: the spend of each user, over queryRecords purchases
// read by one split that then waits at a gate that never opens, so the job runs (and
// answers queries) until the test cancels it. Its sink tells sums each key's latest sum.
func spendJob(store *persistence.DirCheckpoints, sums *latestSums, logger *slog.Logger) func(func(*actor.Config)) (cluster.JobRun, error) {
	gate := &actortest.Gate{}
	return func(option func(*actor.Config)) (cluster.JobRun, error) {
		g := graph.New(queryJob)
		src := graph.From(g, actortest.GatedSource(stream.Generate(1<<40, purchase), queryRecords, gate), graph.Name("purchases"))
		perUser := graph.KeyBy(src, func(p stream.KV[string, int64]) string { return p.Key }, graph.WithCodec(stream.JSON[stream.KV[string, int64]]()))
		graph.Aggregate(perUser, amountSum{}, graph.Name("spend")).To(stream.FuncSink(func(recs []stream.Record[stream.KV[string, int64]]) error {
			sums.mu.Lock()
			defer sums.mu.Unlock()
			for _, r := range recs {
				sums.m[r.Value.Key] = r.Value.Value
			}
			return nil
		}), graph.Name("sink"))
		return g.Build(graph.Parallelism(1), graph.MaxKeyGroups(queryKeyGroups), graph.Logger(logger),
			graph.Checkpoints(store, 20*time.Millisecond), option)
	}
}

// One node (under -race too): its /state answers point queries and scans of its own job,
// and refuses a forwarded request of another placement.
func TestQueryNode(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := wantSums(t)
	sums := &latestSums{m: map[string]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := cluster.StartNode(ctx, cluster.NodeConfig{
		Membership: cluster.Config{NodeID: "solo", Profile: cluster.Loopback, Logger: quiet},
		AdminAddr:  "127.0.0.1:0", Settle: 50 * time.Millisecond, FenceDir: t.TempDir(), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	run := make(chan error, 1)
	go func() { run <- n.Run(ctx, queryJob, queryKeyGroups, spendJob(store, sums, quiet)) }()
	defer func() {
		cancel()
		if err := <-run; err != nil && ctx.Err() == nil {
			t.Errorf("run: %v", err)
		}
	}()
	base := "http://" + n.AdminAddr()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	// Before the run, and until the input is in: 503 or a sum so far, never a wrong key.
	for deadline := time.Now().Add(60 * time.Second); !sums.equal(want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job did not sum its input within 60s")
		}
	}
	for _, key := range []string{"user-0000", "user-0421", "user-0999"} {
		var v admin.StateView
		var got int64
		if code := getState(t, client, base+"/state/spend?key="+key, &v); code != 200 || json.Unmarshal(v.Value, &got) != nil || got != want[key] || v.Node != "solo" {
			t.Errorf("GET /state/spend?key=%s: %d %+v, want %d from solo", key, code, v, want[key])
		}
	}
	var scan admin.ScanView
	if code := getState(t, client, base+"/state/spend?prefix=user-04&limit=10", &scan); code != 200 || len(scan.Entries) != 10 || !scan.More || len(scan.KeyGroups) != queryKeyGroups {
		t.Fatalf("scan: %d %d entries, more %v, %d key groups", code, len(scan.Entries), scan.More, len(scan.KeyGroups))
	}
	for i, e := range scan.Entries {
		key := fmt.Sprintf("user-04%02d", i)
		var got int64
		if string(e.Key) != `"`+key+`"` || json.Unmarshal(e.Value, &got) != nil || got != want[key] {
			t.Errorf("scan entry %d: %s = %s, want %s = %d", i, e.Key, e.Value, key, want[key])
		}
	}
	var e map[string]string
	if code := getState(t, client, base+"/state/spend?key=user-0001&epoch=0000000000000001", &e); code != 503 || e["error"] == "" {
		t.Errorf("a request forwarded under another placement: %d %v, want 503", code, e)
	}
}

// keyGroupOf asks for key through base and returns its key group.
func keyGroupOf(t *testing.T, client *http.Client, base, key string) (int, bool) {
	var v admin.StateView
	code := getState(t, client, base+"/state/spend?key="+url.QueryEscape(key), &v)
	return v.KeyGroup, code == 200
}

// getState GETs url and decodes its JSON into v, returning the status.
func getState(t *testing.T, client *http.Client, url string, v any) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %s: %v", url, resp.Status, err)
	}
	return resp.StatusCode
}
