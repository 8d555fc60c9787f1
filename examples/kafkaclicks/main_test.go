package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// With no outside service: the program produces the clicks, counts them in 10s windows per
// user and prints the committed counts, which are exactly the counts of the generated
// clicks, window by window.
func TestClicksCountedPerWindow(t *testing.T) {
	const clicks, users = 3_000, 7
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := run(ctx, []string{"-clicks", "3000", "-users", "7"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	want := map[WindowCount]bool{}
	counts := map[[2]any]int64{}
	for i := range clicks {
		c, at := clickAt(i, users)
		start := at - at%window.Milliseconds()
		counts[[2]any{c.User, start}]++
	}
	for k, n := range counts {
		start := k[1].(int64)
		want[WindowCount{User: k[0].(string), Start: start, End: start + window.Milliseconds(), Clicks: n}] = true
	}
	got := map[WindowCount]int{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var w WindowCount
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		got[w]++
	}
	for w := range want {
		if got[w] != 1 {
			t.Errorf("window %+v printed %d times", w, got[w])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct windows printed, want %d", len(got), len(want))
	}
}

// With -brokers it uses that cluster, creating its topics when they are missing.
func TestBrokersFlag(t *testing.T) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr strings.Builder
	if err := run(ctx, []string{"-brokers", broker.ListenAddrs()[0], "-clicks", "500", "-users", "3"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var sum int64
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var w WindowCount
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		sum += w.Clicks
	}
	if sum != 500 {
		t.Errorf("the windows count %d clicks, want 500", sum)
	}
	if strings.Contains(stderr.String(), "in-process broker") {
		t.Error("started its own broker although -brokers was given")
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-clicks", "0"}, {"-users", "0"}, {"-bogus"}} {
		if err := run(t.Context(), args, &strings.Builder{}, &strings.Builder{}); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
