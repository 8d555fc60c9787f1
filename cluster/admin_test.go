package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// node is an AdminSource made of a real membership, a placement computed from it, and the
// stage counters of a job that ran.
type node struct {
	members   *Members
	placement *Placement
	stats     []actor.StageStats
}

func (n *node) Members() []Member         { return n.members.Members() }
func (n *node) Placement() *Placement     { return n.placement }
func (n *node) Stats() []actor.StageStats { return n.stats }

// wordcountStats runs a small keyed job and returns its stage counters.
func wordcountStats(t *testing.T) []actor.StageStats {
	t.Helper()
	g := graph.New("wordcount")
	lines := graph.From(g, stream.Slice([]string{"to be or not to be", "that is the question"}))
	words := graph.FlatMap(lines, func(line string, emit func(string)) {
		for _, w := range strings.Fields(line) {
			emit(w)
		}
	})
	counts := graph.Count(graph.KeyBy(words, func(w string) string { return w }), graph.Emit(stream.EmitAtEnd))
	counts.To(stream.NewCollectSink[stream.KV[string, int64]]())
	job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(16))
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	return job.Stats()
}

func newNode(t *testing.T) *node {
	m := join(t, "node-1", nil)
	p := mustPlacement(t, "node-1", memberIDs(m.Members()), Job("wordcount", 16))
	return &node{members: m, placement: p, stats: wordcountStats(t)}
}

// get serves one request and decodes a JSON answer into v (nil: none).
func get(t *testing.T, h http.Handler, path string, wantCode int, v any) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != wantCode {
		t.Fatalf("GET %s: %d %s, want %d", path, rec.Code, rec.Body, wantCode)
	}
	if v != nil {
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, rec.Body)
		}
	}
	return rec.Body.String()
}

func TestAdminMembers(t *testing.T) {
	n := newNode(t)
	h := AdminHandler(n)
	var got []map[string]string
	get(t, h, "/members", http.StatusOK, &got)
	self := n.members.Self()
	want := []map[string]string{{"node_id": "node-1", "addr": self.Addr,
		"admin_addr": "127.0.0.1:91", "remote_addr": "127.0.0.1:81"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("/members = %v, want %v", got, want)
	}
}

func TestAdminPlacement(t *testing.T) {
	p := mustPlacement(t, "node-1", nodeIDs(3), Job("wordcount", 16))
	n := &node{placement: p}
	h := AdminHandler(n)

	var raw map[string]any
	get(t, h, "/placement", http.StatusOK, &raw)
	if raw["epoch"] != p.Epoch().String() || raw["self"] != "node-1" {
		t.Errorf("/placement epoch and self: %v %v, want %v node-1", raw["epoch"], raw["self"], p.Epoch())
	}

	for _, tc := range []struct {
		query     string
		job       string
		keyGroups int
	}{
		{"", "wordcount", 16},
		{"?job=orders", "orders", 128},
		{"?job=orders&key_groups=8", "orders", 8},
	} {
		var v PlacementView
		get(t, h, "/placement"+tc.query, http.StatusOK, &v)
		if v.Epoch != p.Epoch() || strings.Join(v.Nodes, ",") != "node-1,node-2,node-3" || len(v.Jobs) != 1 {
			t.Fatalf("/placement%s = %+v", tc.query, v)
		}
		j := v.Jobs[0]
		if j.Job != tc.job || j.KeyGroups != tc.keyGroups {
			t.Errorf("/placement%s: job %q with %d key groups, want %q with %d", tc.query, j.Job, j.KeyGroups, tc.job, tc.keyGroups)
		}
		if want := p.Table(tc.job, tc.keyGroups); fmt.Sprint(j.Owners) != fmt.Sprint(want) {
			t.Errorf("/placement%s: owners %v, want %v", tc.query, j.Owners, want)
		}
	}

	get(t, h, "/placement?key_groups=0", http.StatusBadRequest, nil)
	get(t, AdminHandler(&node{}), "/placement", http.StatusServiceUnavailable, nil)
}

func TestAdminStages(t *testing.T) {
	n := newNode(t)
	h := AdminHandler(n)
	var got []StageView
	get(t, h, "/stages", http.StatusOK, &got)
	if len(got) != len(n.stats) {
		t.Fatalf("/stages has %d stages, want %d", len(got), len(n.stats))
	}
	for i, s := range got {
		if !reflect.DeepEqual(s.StageStats, n.stats[i]) {
			t.Errorf("/stages[%d] = %+v, want %+v", i, s.StageStats, n.stats[i])
		}
		if s.RateWindow != 0 || s.InRate != 0 {
			t.Errorf("/stages[%d]: a rate on the first call: %+v", i, s)
		}
	}
	var raw []map[string]any
	get(t, h, "/stages", http.StatusOK, &raw)
	for _, field := range []string{"stage", "in", "out", "dead_letters", "late", "backpressure_ns", "watermark", "in_per_s", "rate_window_s"} {
		if _, ok := raw[0][field]; !ok {
			t.Errorf("/stages has no field %q: %v", field, raw[0])
		}
	}
}

func TestAdminMetrics(t *testing.T) {
	n := newNode(t)
	body := get(t, AdminHandler(n), "/metrics", http.StatusOK, nil)
	samples := parseMetrics(t, body)

	for _, s := range n.stats {
		for name, want := range map[string]float64{
			"eddy_stage_records_in_total":           float64(s.In),
			"eddy_stage_records_out_total":          float64(s.Out),
			"eddy_stage_dead_letters_total":         float64(s.DeadLetters),
			"eddy_stage_late_records_total":         float64(s.Late),
			"eddy_stage_restarts_total":             float64(s.Restarts),
			"eddy_stage_batches_total":              float64(s.Batches),
			"eddy_stage_backpressure_seconds_total": s.Backpressure.Seconds(),
			"eddy_stage_alignment_seconds_total":    s.Alignment.Seconds(),
			"eddy_stage_max_queued_batches":         float64(s.MaxQueued),
			"eddy_stage_instances":                  float64(s.Instances),
		} {
			key := fmt.Sprintf("%s{stage=%q}", name, s.Stage)
			got, ok := samples[key]
			if !ok {
				t.Errorf("/metrics has no %s", key)
			} else if got != want {
				t.Errorf("%s = %v, want %v", key, got, want)
			}
		}
		// The job ran to the end: every input ended, the watermark is +Inf.
		if key := fmt.Sprintf("eddy_stage_watermark_seconds{stage=%q}", s.Stage); s.HasWatermark && samples[key] != samples["+Inf"] {
			t.Errorf("%s = %v, want +Inf", key, samples[key])
		}
	}
	if in := samples[fmt.Sprintf("eddy_stage_records_in_total{stage=%q}", n.stats[0].Stage)]; in == 0 {
		t.Errorf("the job's first stage took in nothing: %v", n.stats)
	}
	for key, want := range map[string]float64{
		"eddy_cluster_members":                                                      1,
		`eddy_cluster_owned_key_groups{eddy_job="wordcount"}`:                       16,
		fmt.Sprintf(`eddy_cluster_placement_info{epoch="%v"}`, n.placement.Epoch()): 1,
	} {
		if got, ok := samples[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	for _, line := range []string{
		"# TYPE eddy_stage_records_in_total counter",
		"# TYPE eddy_stage_watermark_seconds gauge",
		"# TYPE go_goroutines gauge",
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics has no line %q", line)
		}
	}
}

// parseMetrics reads Prometheus text into name{labels} → value; "+Inf" maps to +Inf.
func parseMetrics(t *testing.T, body string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	inf, _ := strconv.ParseFloat("+Inf", 64)
	out["+Inf"] = inf
	return out
}

func TestServeAdmin(t *testing.T) {
	h := AdminHandler(&node{placement: mustPlacement(t, "node-1", nodeIDs(1))})
	for _, addr := range []string{"", ":0", "127.0.0.1:0"} {
		t.Run(fmt.Sprintf("%q", addr), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			srv, err := ServeAdmin(ctx, addr, h)
			if err != nil {
				t.Fatal(err)
			}
			host, _, _ := net.SplitHostPort(srv.Addr().String())
			if host != "127.0.0.1" {
				t.Errorf("ServeAdmin(%q) listens on %s, want loopback", addr, srv.Addr())
			}
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get("http://" + srv.Addr().String() + "/placement")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"self":"node-1"`) {
				t.Errorf("GET /placement: %s %s", resp.Status, body)
			}
			cancel() // the context ends the server; Close waits for it
			if err := srv.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := client.Get("http://" + srv.Addr().String() + "/placement"); err == nil {
				t.Error("the server still answers after its context ended")
			}
		})
	}
	if _, err := ServeAdmin(t.Context(), "no port", h); err == nil {
		t.Error("ServeAdmin with a bad address succeeded")
	}
}

// /placement refuses requests that would make it compute and send tables without bound.
func TestAdminPlacementBounds(t *testing.T) {
	h := AdminHandler(&node{placement: mustPlacement(t, "node-1", nodeIDs(3), Job("wordcount", 16))})
	jobs := func(n int) string {
		var q []string
		for i := range n {
			q = append(q, fmt.Sprintf("job=j%d", i))
		}
		return strings.Join(q, "&")
	}
	for _, tt := range []struct {
		query string
		code  int
		want  string
	}{
		{"?" + jobs(8), http.StatusOK, ""},
		{"?" + jobs(8) + "&job=j0&job=j1", http.StatusOK, ""}, // repeated names count once
		{"?" + jobs(9), http.StatusBadRequest, "9 jobs: at most 8 in one request"},
		{"?job=a&key_groups=65536", http.StatusOK, ""},
		{"?job=a&key_groups=65537", http.StatusBadRequest, `key_groups "65537": want a number from 1 to 65536`},
		{"?job=a&job=b&key_groups=40000", http.StatusBadRequest, "80000 key groups in all: at most 65536 in one request"},
		{"?job=" + strings.Repeat("x", 257), http.StatusBadRequest, "job name of 257 bytes: want 1 to 256"},
		{"?job=", http.StatusBadRequest, "job name of 0 bytes"},
		{"?" + jobs(200), http.StatusRequestURITooLong, "at most 1024"},
	} {
		body := get(t, h, "/placement"+tt.query, tt.code, nil)
		var answer struct{ Error string }
		if err := json.Unmarshal([]byte(body), &answer); err != nil {
			t.Fatalf("/placement%.40s...: %v in %s", tt.query, err, body)
		}
		if !strings.Contains(answer.Error, tt.want) {
			t.Errorf("/placement%.40s...: %s, want it to say %q", tt.query, body, tt.want)
		}
	}
}
