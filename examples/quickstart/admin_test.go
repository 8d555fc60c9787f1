package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// syncBuffer is a strings.Builder written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fetch GETs url and decodes its JSON answer into a generic value.
func fetch(t *testing.T, url string) (int, any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return resp.StatusCode, string(body)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: not JSON (%v): %s", url, err, body)
	}
	return resp.StatusCode, v
}

func fields(t *testing.T, what string, v any, names ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %T, want an object", what, v)
	}
	for _, n := range names {
		if _, ok := m[n]; !ok {
			t.Errorf("%s has no field %q: %v", what, n, m)
		}
	}
	return m
}

// Every admin path answers while `quickstart -admin ADDR -events 5000000 -rate 500000` runs.
func TestAdminWhileRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-admin", "127.0.0.1:0", "-events", "5000000", "-rate", "500000"}, &stdout, &stderr)
	}()
	var base string
	announced := regexp.MustCompile(`admin endpoint on (http://\S+)`)
	for deadline := time.Now().Add(20 * time.Second); base == ""; time.Sleep(5 * time.Millisecond) {
		if m := announced.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin endpoint announced: %s", stderr.String())
		}
	}

	code, v := fetch(t, base+"/status")
	if st := fields(t, "/status", v, "job", "state", "started"); code != 200 || st["state"] != "running" {
		t.Errorf("/status: %d %v", code, v)
	}
	_, v = fetch(t, base+"/topology")
	topo := fields(t, "/topology", v, "job", "stages", "vertices", "channels")
	if n := len(topo["vertices"].([]any)); n != 2 {
		t.Errorf("/topology: %d vertices, want clicks and clicks-per-user", n)
	}
	_, v = fetch(t, base+"/checkpoints")
	fields(t, "/checkpoints", v, "completed", "failed", "history")

	// The count of user-00 grows while the job runs; /stages has a rate by the second call.
	state := func() float64 {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			code, v := fetch(t, base+"/state/clicks-per-user?key=user-00")
			if code == 200 {
				return fields(t, "/state", v, "stage", "key", "value")["value"].(float64)
			}
			// 503 while the job starts, 404 until user-00's first click is counted.
			if (code != 404 && code != 503) || time.Now().After(deadline) {
				t.Fatalf("/state: %d %v", code, v)
			}
		}
	}
	first := state()
	var stages []any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, v = fetch(t, base+"/stages")
		stages = v.([]any)
		if fields(t, "/stages[0]", stages[0], "in_per_s")["in_per_s"].(float64) > 0 || time.Now().After(deadline) {
			break
		}
	}
	for i, s := range stages {
		st := fields(t, "/stages", s, "stage", "in", "out", "in_per_s", "out_per_s", "queued_batches", "credits_in_use",
			"backpressured", "watermark", "watermark_lag_ns", "dead_letters", "late", "instances_detail", "instance_rates")
		if i == 0 && st["in_per_s"].(float64) <= 0 {
			t.Errorf("/stages: clicks has no rate: %v", st)
		}
		for _, is := range st["instances_detail"].([]any) {
			fields(t, "/stages instance", is, "index", "in", "out", "queued_batches", "credits_in_use", "backpressure_ns", "dead_letters")
		}
	}
	if second := state(); first <= 0 || second < first || second > 5_000_000 {
		t.Errorf("the count of user-00 went from %v to %v", first, second)
	}

	_, v = fetch(t, base+"/metrics")
	if s, _ := v.(string); !strings.Contains(s, `eddy_stage_records_in_total{stage="clicks"}`) {
		t.Errorf("/metrics: %.300s", v)
	}
	for _, path := range []string{"/state/nope?key=user-00", "/state/clicks-per-user?key=nobody", "/nope"} {
		code, v := fetch(t, base+path)
		if code != 404 || fields(t, path, v, "error")["error"] == "" {
			t.Errorf("GET %s: %d %v, want 404 with an error", path, code, v)
		}
	}
	if code, _ := fetch(t, base+"/stages?"+strings.Repeat("k=v&", 1000)); code != http.StatusRequestURITooLong {
		t.Errorf("a 4 KB query string: %d", code)
	}
	resp, err := http.Post(base+"/stages", "text/plain", strings.NewReader(strings.Repeat("x", 10<<20)))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a 10 MB body: %s", resp.Status)
		}
	}
	cancel()
	<-done
	http.DefaultClient.CloseIdleConnections()
}
