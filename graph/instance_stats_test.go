package graph_test

import (
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// Each instance's counters add up to its stage's, and once the job has ended nothing is
// queued and no credit is in use.
func TestPerInstanceStatsAddUpToTheStage(t *testing.T) {
	const n, parallelism, keyGroups, credits = 20_000, 3, 16, 4
	g := graph.New("instances")
	src := graph.From(g, count(n), graph.Name("src"))
	counts := graph.Count(graph.KeyBy(src, func(v int64) int64 { return v % 50 }), graph.Name("per-key"))
	counts.To(stream.NewCollectSink[stream.KV[int64, int64]](), graph.Name("sink"))
	job := run(t, g, graph.Parallelism(parallelism), graph.MaxKeyGroups(keyGroups), graph.Credits(credits))

	// The sink is fused into per-key: only the source sends batches.
	limits := map[string]int64{"src": parallelism * keyGroups * credits, "per-key": 0}
	for _, st := range job.Stats() {
		if len(st.PerInstance) != st.Instances {
			t.Fatalf("%s: %d instance rows, want %d", st.Stage, len(st.PerInstance), st.Instances)
		}
		var in, out, busy int64
		for i, is := range st.PerInstance {
			if is.Index != i {
				t.Errorf("%s: row %d has index %d", st.Stage, i, is.Index)
			}
			in += is.In
			out += is.Out
			if is.In > 0 {
				busy++
			}
		}
		if in != st.In || out != st.Out {
			t.Errorf("%s: instances sum to in %d out %d, the stage has in %d out %d", st.Stage, in, out, st.In, st.Out)
		}
		if st.In > 0 && busy < 2 {
			t.Errorf("%s: only %d instance took records in; the load is spread", st.Stage, busy)
		}
		if st.Queued != 0 || st.CreditsInUse != 0 {
			t.Errorf("%s: after the end, %d batches queued and %d credits in use", st.Stage, st.Queued, st.CreditsInUse)
		}
		if want := limits[st.Stage]; st.CreditLimit != want {
			t.Errorf("%s: credit limit %d, want %d", st.Stage, st.CreditLimit, want)
		}
	}
	if st := statsOf(t, job, "src"); st.In != n {
		t.Errorf("src took in %d, want %d", st.In, n)
	}
}

// The job remembers the checkpoints it took: ids in order, sizes, no errors.
func TestCheckpointHistory(t *testing.T) {
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := graph.New("history")
	src := graph.From(g, stream.Generate(200_000, func(i int64) int64 { return i }), graph.Name("src"))
	slow := graph.Map(src, func(i int64) int64 {
		if i%1000 == 0 {
			time.Sleep(time.Millisecond) // the job runs long enough for a few checkpoints
		}
		return i
	})
	graph.Count(graph.KeyBy(slow, func(v int64) int64 { return v % 10 })).To(stream.NewCollectSink[stream.KV[int64, int64]]())
	job := run(t, g, graph.Parallelism(2), graph.MaxKeyGroups(4), graph.Checkpoints(store, 5*time.Millisecond))
	h := job.CheckpointHistory()
	if len(h) == 0 {
		t.Fatalf("no checkpoint in the history; the job completed %d", job.Checkpoints().Completed)
	}
	// The final checkpoint is counted as completed but is not one the coordinator took; the
	// history keeps the last 64.
	if c := job.Checkpoints(); int64(len(h)) != min(c.Completed+c.Failed-1, 64) {
		t.Errorf("%d checkpoints in the history; the counters say %+v", len(h), job.Checkpoints())
	}
	for i, r := range h {
		if r.ID != h[0].ID+int64(i) || r.Error != "" || r.Bytes <= 0 || r.Duration <= 0 || r.Started.IsZero() {
			t.Errorf("checkpoint %d: %+v; want id %d, complete, with a size and a duration", i, r, h[0].ID+int64(i))
		}
	}
}
