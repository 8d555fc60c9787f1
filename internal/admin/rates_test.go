package admin

import (
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
)

func TestRates(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	stats := func(in, out int64) []actor.StageStats {
		return []actor.StageStats{{Stage: "map", In: in, Out: out}}
	}
	tr := &rateTracker{window: 10 * time.Second}
	for _, tc := range []struct {
		at            time.Duration
		in, out       int64
		window        float64
		inRate, outPS float64
	}{
		{0, 100, 50, 0, 0, 0},                               // first snapshot: no rate
		{2 * time.Second, 300, 150, 2, 100, 50},             // since t0
		{4 * time.Second, 500, 150, 4, 100, 25},             // since t0, still in the window
		{15 * time.Second, 500, 150, 11, 0, 0},              // all older than 10 s: since the newest (4 s)
		{16 * time.Second, 600, 250, 1, 100, 100},           // since 15 s
		{18 * time.Second, 50, 250, 3, 50.0 / 3, 100.0 / 3}, // in went down (a restart): from 0
	} {
		got := tr.observe(t0.Add(tc.at), stats(tc.in, tc.out))[0]
		if got.RateWindow != tc.window || got.InRate != tc.inRate || got.OutRate != tc.outPS {
			t.Errorf("at %v: window %v in %v/s out %v/s, want %v, %v, %v", tc.at,
				got.RateWindow, got.InRate, got.OutRate, tc.window, tc.inRate, tc.outPS)
		}
	}
	for range 2 * maxSamples {
		tr.observe(t0.Add(17*time.Second), stats(1, 1))
	}
	if len(tr.samples) > maxSamples {
		t.Errorf("%d samples kept, at most %d", len(tr.samples), maxSamples)
	}
}

// The back-pressure share is the time without credit over the wall time, per instance.
func TestBackpressureShare(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	stats := func(bp0, bp1 time.Duration) []actor.StageStats {
		return []actor.StageStats{{Stage: "map", Instances: 2, Backpressure: bp0 + bp1, PerInstance: []actor.InstanceStats{
			{Index: 0, Backpressure: bp0}, {Index: 1, Backpressure: bp1}}}}
	}
	tr := &rateTracker{window: 10 * time.Second}
	tr.observe(t0, stats(0, 0))
	got := tr.observe(t0.Add(2*time.Second), stats(2*time.Second, time.Second))[0]
	if got.Backpressured != 0.75 || got.InstanceRates[0].Backpressured != 1 || got.InstanceRates[1].Backpressured != 0.5 {
		t.Errorf("back-pressured %v, instances %+v; want 0.75, 1 and 0.5", got.Backpressured, got.InstanceRates)
	}
}
