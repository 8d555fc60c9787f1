package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/admin"
	"github.com/eddyflow/eddy/stream"
)

// startJob runs, until the test cancels it, a job whose keyed stage "per-key" counts 1000
// records over the keys k0, k1 and k2 and then gets no more; it returns the admin address.
func startJob(t *testing.T) (addr string, sink *stream.CollectSink[stream.KV[string, int64]], cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	g := graph.New("admin-test")
	src := graph.From(g, stream.Generate(1<<40, func(i int64) int64 { return i }), graph.Name("numbers"))
	slow := graph.Map(src, func(i int64) int64 {
		if i >= 1000 {
			time.Sleep(50 * time.Microsecond) // the job goes on, idle, after the first 1000
		}
		return i
	}, graph.Name("slow"))
	first := slow.Filter(func(i int64) bool { return i < 1000 }, graph.Name("first-1000"))
	// Record by record (no local aggregation), so that the stage takes in a known 1000.
	counts := graph.Count(graph.KeyBy(first, func(i int64) string { return fmt.Sprintf("k%d", i%3) }), graph.Name("per-key"), graph.LocalAggregation(false))
	sink = stream.NewCollectSink[stream.KV[string, int64]]()
	counts.To(sink, graph.Name("sink"))
	job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(8), graph.Admin("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- job.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for job.AdminAddr() == nil {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("no admin endpoint after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return job.AdminAddr().String(), sink, cancel, ch
}

func getJSON(t *testing.T, url string, wantCode int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %s %s, want %d", url, resp.Status, body, wantCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", url, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

func TestJobAdminEndpoints(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	addr, sink, cancel, done := startJob(t)
	defer cancel()
	base := "http://" + addr

	var status admin.Status
	getJSON(t, base+"/status", 200, &status)
	if status.Job != "admin-test" || status.State != "running" || status.Ended != nil {
		t.Errorf("/status %+v; want admin-test running", status)
	}
	var topo graph.Description
	getJSON(t, base+"/topology", 200, &topo)
	if len(topo.Vertices) != 2 || topo.Vertices[1].Name != "per-key" || len(topo.Channels) != 1 {
		t.Errorf("/topology %+v; want numbers → per-key", topo)
	}

	// Counts are final once all 1000 records went through: the state of k0 is 334.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st admin.StateView
		resp, err := http.Get(base + "/state/per-key?key=k0")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			_ = json.NewDecoder(resp.Body).Decode(&st)
		}
		resp.Body.Close()
		if string(st.Value) == "334" { // 1000 records over k0, k1, k2: k0 has 334
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state of k0 is %s (%d), want 334", st.Value, resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The state is the value the job emitted last for k0.
	var last int64 = -1
	for _, kv := range sink.Values() {
		if kv.Key == "k0" {
			last = kv.Value
		}
	}
	if last != 334 {
		t.Errorf("the job emitted %d last for k0; its state says 334", last)
	}
	// The state answers carry what they reflect; a scan lists the keys in key order.
	var st admin.StateView
	for _, k := range []string{"k2", "k1"} { // k0's count is final: the others soon are
		for getJSON(t, base+"/state/per-key?key="+k, 200, &st); string(st.Value) != "333" && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			getJSON(t, base+"/state/per-key?key="+k, 200, &st)
		}
	}
	if st.Stage != "per-key" || st.Key != "k1" || string(st.Value) != "333" || st.KeyGroup < 0 || st.KeyGroup >= 8 {
		t.Errorf("/state/per-key?key=k1: %+v, want 333", st)
	}
	var scan admin.ScanView
	getJSON(t, base+"/state/per-key?prefix=k&limit=2", 200, &scan)
	if len(scan.Entries) != 2 || string(scan.Entries[0].Key) != `"k0"` || string(scan.Entries[0].Value) != "334" ||
		string(scan.Entries[1].Key) != `"k1"` || !scan.More || len(scan.KeyGroups) != 8 {
		t.Errorf("/state/per-key?prefix=k&limit=2: %+v, want k0 = 334, k1 = 333, more", scan)
	}
	getJSON(t, base+"/state/per-key?from=k2", 200, &scan)
	if len(scan.Entries) != 1 || string(scan.Entries[0].Key) != `"k2"` || scan.More {
		t.Errorf("/state/per-key?from=k2: %+v, want k2 alone", scan)
	}

	var stages []admin.StageView
	getJSON(t, base+"/stages", 200, &stages)
	for stages[0].InRate == 0 && time.Now().Before(deadline) { // a later call has a rate
		time.Sleep(10 * time.Millisecond)
		getJSON(t, base+"/stages", 200, &stages)
	}
	if len(stages) != 2 || stages[1].Stage != "per-key" || stages[1].In != 1000 || len(stages[1].PerInstance) != 8 || len(stages[1].InstanceRates) != 8 {
		t.Fatalf("/stages %+v; want numbers and per-key, 1000 in, 8 instances", stages)
	}
	if stages[0].RateWindow <= 0 || stages[0].InRate <= 0 {
		t.Errorf("/stages: numbers has no rate: window %v in %v/s", stages[0].RateWindow, stages[0].InRate)
	}
	var ckpts admin.CheckpointsView
	getJSON(t, base+"/checkpoints", 200, &ckpts)
	if ckpts.History == nil {
		t.Error("/checkpoints has no history list")
	}

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/state/nope?key=k0", 404},
		{"/state/per-key?key=k9", 404},
		{"/state/numbers?key=1", 400}, // not keyed
		{"/state/per-key", 400},
		{"/state/per-key?key=k0&prefix=k", 400},
		{"/state/per-key?limit=100001", 400},
		{"/state/per-key?limit=x", 400},
		{"/state/nope?prefix=k", 404},
		{"/state/numbers?prefix=k", 400},
		{"/nope", 404},
		{"/stages?" + strings.Repeat("x", 2000), 414},
	} {
		var e map[string]string
		getJSON(t, base+tc.path, tc.code, &e)
		if e["error"] == "" {
			t.Errorf("GET %s: no error message: %v", tc.path, e)
		}
	}
	resp, err := http.Post(base+"/stages", "application/json", strings.NewReader(strings.Repeat("x", 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 && resp.StatusCode != 405 {
		t.Errorf("POST with a body: %s", resp.Status)
	}

	metrics, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(body), `eddy_stage_records_in_total{stage="per-key"} 1000`) {
		t.Errorf("/metrics has no in-count of per-key:\n%s", body)
	}

	// A request waiting for the end hears it.
	ended := make(chan admin.Status, 1)
	go func() {
		var st admin.Status
		resp, err := http.Get(base + "/status?wait=30s")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		ended <- st
	}()
	time.Sleep(50 * time.Millisecond) // the request is on its way
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want cancelled", err)
	}
	if st := <-ended; st.State != "cancelled" || st.Ended == nil {
		t.Errorf("/status?wait: %+v; want cancelled, with an end time", st)
	}
	if _, err := http.Get(base + "/status"); err == nil {
		t.Error("the admin endpoint still answers after the run")
	}
	http.DefaultClient.CloseIdleConnections()
}
