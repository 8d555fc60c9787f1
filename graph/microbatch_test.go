package graph_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/keycount"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// In micro-batch mode the sources read in batches of at most MicroBatchRecords per split,
// each batch is closed by a checkpoint, and the two-phase sink commits each batch's output
// under that checkpoint's id: one committed file per batch and writer, with no more output
// than the batch's input, and the result is exact.
func TestMicroBatch(t *testing.T) {
	const n, keys, perSplit, splits = 20_000, 50, 1_000, 2
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	sink, err := stream.TwoPhaseJSONLSink[keycount.Output](out)
	if err != nil {
		t.Fatal(err)
	}
	g := graph.New("micro")
	src := graph.From(g, stream.Generate(n, func(i int64) int64 { return i % keys }), graph.Name("src"))
	counts := graph.Count(graph.KeyBy(src, func(k int64) int64 { return k }), graph.Emit(stream.EmitEveryUpdate))
	graph.Map(counts, func(kv stream.KV[int64, int64]) keycount.Output {
		return keycount.Output{Key: strconv.FormatInt(kv.Key, 10), Seq: kv.Value}
	}).To(sink)
	job := build(t, g, graph.Parallelism(splits), graph.MaxKeyGroups(4), graph.Checkpoints(store, time.Hour),
		graph.MicroBatch(time.Millisecond), graph.MicroBatchRecords(perSplit))
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	batches := job.MicroBatches()
	// Each batch reads perSplit records of each split; the last part of the input ends the
	// job with its final checkpoint rather than a batch of its own.
	if want := n/(perSplit*splits) - 1; len(batches) < want {
		t.Errorf("%d batches closed; want at least %d", len(batches), want)
	}
	files, err := filepath.Glob(filepath.Join(out, "part-c*-i*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	perCheckpoint := map[string]int{}
	for _, f := range files {
		c := filepath.Base(f)[len("part-c") : len("part-c")+10]
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		perCheckpoint[c] += bytes.Count(b, []byte("\n"))
	}
	if len(perCheckpoint) < len(batches) {
		t.Errorf("output committed under %d checkpoints; %d batches closed", len(perCheckpoint), len(batches))
	}
	for c, lines := range perCheckpoint {
		if lines > perSplit*splits {
			t.Errorf("checkpoint %s committed %d lines: more than one batch's %d records", c, lines, perSplit*splits)
		}
	}
	want := map[string]int{}
	for k := range int64(keys) {
		want[strconv.FormatInt(k, 10)] = n / keys
	}
	if _, _, err := keycount.Check(out, want); err != nil {
		t.Error(err)
	}
	t.Logf("%d batches, output committed under %d checkpoints", len(batches), len(perCheckpoint))
	if st := job.Checkpoints(); st.Completed < int64(len(batches)) {
		t.Errorf("%d checkpoints completed for %d batches", st.Completed, len(batches))
	}
}
