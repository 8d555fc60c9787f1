package tui

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/admin"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii) // golden files hold text, no escape codes
	os.Exit(m.Run())
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// snapshot is a reading of a job clicks → per-user (keyed) with the sink fused, where
// per-user holds the source back.
func snapshot(at time.Duration, inRate float64) Snapshot {
	return Snapshot{
		At:     t0.Add(at),
		Status: admin.Status{Job: "clicks", State: "running", Started: t0},
		Topology: graph.Description{Job: "clicks",
			Vertices: []graph.VertexInfo{
				{Name: "clicks", Kind: "source", Instances: 2, Stages: []string{"clicks"}},
				{Name: "per-user", Kind: "keyed", Instances: 4, Stages: []string{"per-user", "board"}},
			},
			Channels: []graph.ChannelInfo{{From: "clicks", To: "per-user", Partitioning: "hash"}},
		},
		Stages: []admin.StageView{
			{StageStats: actor.StageStats{Stage: "clicks", Instances: 2, In: 1000, Out: 1000, Queued: 0, CreditsInUse: 16, CreditLimit: 16,
				PerInstance: []actor.InstanceStats{{Index: 0, In: 500, Out: 500}, {Index: 1, In: 500, Out: 500}}},
				RateWindow: 1, InRate: inRate, OutRate: inRate, Backpressured: 0.9,
				InstanceRates: []admin.InstanceRates{{Index: 0, InRate: inRate / 2, Backpressured: 0.9}, {Index: 1, InRate: inRate / 2, Backpressured: 0.9}}},
			{StageStats: actor.StageStats{Stage: "per-user", Instances: 4, In: 1000, Out: 1000, Queued: 8, DeadLetters: 3, Late: 1,
				HasWatermark: true, Watermark: t0.UnixMilli(), WatermarkLag: 1500 * time.Millisecond,
				PerInstance: []actor.InstanceStats{{Index: 0, In: 250, Out: 250, Queued: 2, HasWatermark: true, Watermark: t0.UnixMilli()},
					{Index: 1, In: 250}, {Index: 2, In: 250}, {Index: 3, In: 250}}},
				RateWindow: 1, InRate: inRate, OutRate: inRate, Backpressured: 0},
		},
		Checkpoints: admin.CheckpointsView{CheckpointStats: actor.CheckpointStats{Completed: 2, Last: 2, Duration: 12 * time.Millisecond, Bytes: 2048},
			History: []actor.CheckpointRecord{
				{ID: 1, Started: t0.Add(time.Second), Duration: 10 * time.Millisecond, Bytes: 1024},
				{ID: 2, Started: t0.Add(2 * time.Second), Duration: 12 * time.Millisecond, Bytes: 2048, Alignment: 3 * time.Millisecond},
			}},
	}
}

func TestModelObserveKeepsRateHistory(t *testing.T) {
	m := NewModel("127.0.0.1:9090")
	for i := range historyLen + 5 {
		m.Observe(snapshot(time.Duration(i)*time.Second, float64(i)))
	}
	h := m.Rates["clicks"]
	if len(h) != historyLen || h[0] != 5 || h[len(h)-1] != historyLen+4 {
		t.Errorf("history %v; want the last %d rates, 5 to %d", h, historyLen, historyLen+4)
	}
	if m.Link != Connected || m.Ended != nil {
		t.Errorf("link %v ended %v; want connected, running", m.Link, m.Ended)
	}
}

func TestModelKeys(t *testing.T) {
	m := NewModel("x")
	m.Observe(snapshot(time.Second, 100))
	for _, tc := range []struct {
		key      Key
		page     Page
		selected int
	}{
		{KeyDown, PageStages, 1},
		{KeyDown, PageStages, 1}, // the last row stays selected
		{KeyEnter, PageInstances, 1},
		{KeyBack, PageStages, 1},
		{KeyUp, PageStages, 0},
		{KeyUp, PageStages, 0},
		{KeyTab, PageCheckpoints, 0},
		{KeyTab, PageNodes, 0},
		{KeyTab, PageStages, 0},
	} {
		m.Press(tc.key)
		if m.Page != tc.page || m.Selected != tc.selected {
			t.Fatalf("after %s: page %v selected %d, want %v and %d", tc.key, m.Page, m.Selected, tc.page, tc.selected)
		}
	}
}

func TestModelEndAndLoss(t *testing.T) {
	m := NewModel("x")
	m.Observe(snapshot(time.Second, 100))
	m.Fail(errors.New("connection refused"), t0.Add(2*time.Second))
	m.Fail(errors.New("connection refused"), t0.Add(3*time.Second))
	if m.Link != Lost || !m.LostSince.Equal(t0.Add(2*time.Second)) {
		t.Errorf("link %v since %v; want lost since the first failure", m.Link, m.LostSince)
	}
	ended := t0.Add(4 * time.Second)
	m.End(admin.Status{Job: "clicks", State: "finished", Started: t0, Ended: &ended})
	if m.Ended == nil || m.Ended.State != "finished" {
		t.Fatalf("ended %+v", m.Ended)
	}
	// A new run at the same address starts afresh.
	next := snapshot(time.Minute, 5)
	next.Status.Started = t0.Add(time.Minute)
	m.Observe(next)
	if m.Ended != nil || m.Link != Connected || len(m.Rates["clicks"]) != 1 {
		t.Errorf("after a new run: ended %v link %v history %v", m.Ended, m.Link, m.Rates["clicks"])
	}
}

func TestBottleneck(t *testing.T) {
	m := NewModel("x")
	m.Observe(snapshot(time.Second, 100))
	if got := m.Bottleneck(); got != "per-user" {
		t.Errorf("bottleneck %q, want per-user (clicks is back-pressured 90%% of the time)", got)
	}
	s := snapshot(time.Second, 100)
	s.Stages[0].Backpressured = 0.05
	m.Observe(s)
	if got := m.Bottleneck(); got != "" {
		t.Errorf("bottleneck %q with no back-pressure", got)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	base := func() *Model {
		m := NewModel("127.0.0.1:9090")
		m.Width, m.Height = 140, 40
		for i := range 6 {
			m.Observe(snapshot(time.Duration(i+1)*time.Second, float64(100*(i+1))))
		}
		return m
	}
	ended := t0.Add(10 * time.Second)
	for _, tc := range []struct {
		name   string
		setup  func(m *Model)
		prompt string
	}{
		{"stages.txt", func(m *Model) {}, ""},
		{"instances.txt", func(m *Model) { m.Press(KeyDown); m.Press(KeyEnter) }, ""},
		{"checkpoints.txt", func(m *Model) { m.Press(KeyTab) }, ""},
		{"nodes.txt", func(m *Model) { m.Press(KeyTab); m.Press(KeyTab) }, ""},
		{"lookup.txt", func(m *Model) { m.Press(KeyDown); m.Lookup = "per-user[u1] = 42" }, "key in per-user: u2"},
		{"lost.txt", func(m *Model) { m.Fail(errors.New("connection refused"), t0.Add(7*time.Second)) }, ""},
		{"ended.txt", func(m *Model) {
			m.End(admin.Status{Job: "clicks", State: "failed", Error: "too many dead letters", Started: t0, Ended: &ended})
			m.Fail(errors.New("connection refused"), t0.Add(11*time.Second))
		}, ""},
		{"small.txt", func(m *Model) { m.Width, m.Height = 60, 12 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.setup(m)
			got := Render(m, tc.prompt)
			golden(t, tc.name, got)
			if lines := strings.Count(got, "\n") + 1; lines > m.Height {
				t.Errorf("%d lines on a screen of %d", lines, m.Height)
			}
		})
	}
}
