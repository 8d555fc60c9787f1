package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/stream/infer/online"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPipeline(t *testing.T) {
	const n = 60_000 // 50 minutes of event time; amounts inflate at 25:00
	dir := t.TempDir()
	c := config{n: n, seed: 3, alerts: filepath.Join(dir, "alerts.jsonl"), trainingLog: filepath.Join(dir, "train.jsonl"), publish: 2000, threshold: 0.8}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := pipeline(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	shift := (n / 2) * every.Milliseconds()

	// Every transaction was scored once, by A or B, about half each (A/B by card).
	a, b := res.stats["A"].Records, res.stats["B"].Records
	if a+b != n || a < n/3 || b < n/3 {
		t.Errorf("A scored %d, B %d; want %d in all, about half each", a, b, n)
	}
	// Every label met its prediction, in the training log; B was republished as it learned.
	lines := countLines(t, c.trainingLog)
	if lines != n {
		t.Errorf("%d lines in the training log, want %d (every prediction joined with its label)", lines, n)
	}
	if res.published != n/c.publish {
		t.Errorf("%d versions of B published, want %d", res.published, n/c.publish)
	}
	if alerts := countLines(t, c.alerts); alerts == 0 || int64(alerts) != res.alerts {
		t.Errorf("%d alert lines, %d counted", alerts, res.alerts)
	}
	// Drift: within one window of the shift, none before.
	if len(res.drifts) == 0 {
		t.Fatal("no drift event")
	}
	for _, d := range res.drifts {
		if d.End <= shift {
			t.Errorf("drift event for a window before the shift at %d: %+v", shift, d)
		}
	}
	if first := res.drifts[0]; first.Start > shift+window.Milliseconds() {
		t.Errorf("first drift event at %d, more than a window after the shift at %d", first.Start, shift)
	}
	// The online version learned: its AUC in the last whole window is well above chance.
	// (The version that scores a window is whichever the learner had published by then:
	// under CPU load it lags the stream, and one run in CI scored 0.81. AUC above 0.9 on a
	// held-back stream is checked deterministically in stream/infer/online.)
	var last online.Metric
	for _, m := range res.metrics {
		if m.Version == "B" && m.N > 1000 {
			last = m
		}
	}
	if last.AUC <= 0.75 {
		t.Errorf("version B's AUC in its last window: %+v; want above 0.75", last)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("%s: line %d is not JSON", path, n+1)
		}
		n++
	}
	return n
}
