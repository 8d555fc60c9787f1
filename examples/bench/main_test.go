package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Each scenario runs on a small input, and its engine result must equal its baseline's
// (run returns an error otherwise). Timings are not asserted: benchmarks are measured by
// running the program, not in tests.
func TestScenarios(t *testing.T) {
	defer goleak.VerifyNone(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		scenario   string
		events     int64
		backend    string
		checkpoint time.Duration
	}{
		{"stateless", 300_000, "memory", 0},
		{"keyed-count", 300_000, "memory", 0},
		{"backpressure", 20_000, "memory", 0},
		{"window", 300_000, "memory", 0},
		{"large-state", 50_000, "badger", 0},
		{"keyed-count", 1, "memory", 0},
		{"keyed-count", 300_000, "badger", 20 * time.Millisecond},
	} {
		t.Run(tt.scenario+"/"+tt.backend, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(&out, tt.scenario, tt.events, 2, 1, 1, tt.backend, tt.checkpoint, "", "", quiet); err != nil {
				t.Fatal(err)
			}
			var r result
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("output %q is not one JSON object: %v", out.String(), err)
			}
			if strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
				t.Errorf("output is not one line: %q", out.String())
			}
			if r.Scenario != tt.scenario || r.Events != tt.events || r.Parallelism != 2 || r.PeakHeapBytes == 0 || r.Backend != tt.backend {
				t.Errorf("result %+v does not describe the run", r)
			}
			if tt.checkpoint > 0 && (r.Checkpoints == 0 || r.NoCheckpointEventsPerSec == 0) {
				t.Errorf("result %+v lacks the checkpoints taken or the throughput without them", r)
			}
			for _, k := range []string{"scenario", "events", "parallelism", "seconds", "events_per_sec", "baseline_events_per_sec", "ratio", "peak_heap_bytes"} {
				if !strings.Contains(out.String(), `"`+k+`":`) {
					t.Errorf("output lacks %q: %s", k, out.String())
				}
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		scenario string
		events   int64
		p, runs  int
		want     string
	}{
		{"nope", 10, 1, 1, "unknown -scenario"},
		{"stateless", 0, 1, 1, "-events 0"},
		{"stateless", 10, 0, 1, "-parallelism 0"},
		{"stateless", 10, 1, 0, "-runs 0"},
		{"stateless", 10, 1, 1, "-state \"rocksdb\""},
	} {
		backend := "memory"
		if strings.HasPrefix(tt.want, "-state") {
			backend = "rocksdb"
		}
		err := run(io.Discard, tt.scenario, tt.events, tt.p, tt.runs, 1, backend, 0, "", "", quiet)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q, %d, %d, %d) = %v, want an error with %q", tt.scenario, tt.events, tt.p, tt.runs, err, tt.want)
		}
	}
}
