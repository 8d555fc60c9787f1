package stream_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/eddyflow/eddy/stream"
)

// ExampleTwoPhaseJSONLSink walks a two-phase sink through one checkpoint, as the runtime does:
// nothing is in the output directory until the checkpoint completes and commits.
func ExampleTwoPhaseJSONLSink() {
	dir, err := os.MkdirTemp("", "twophase")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	sink, err := stream.TwoPhaseJSONLSink[stream.KV[string, int]](dir)
	if err != nil {
		panic(err)
	}
	// At start: no checkpoint completed yet.
	if err := sink.Recover(0, func(int) bool { return true }); err != nil {
		panic(err)
	}
	visible := func() []string {
		files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
		for i, f := range files {
			files[i] = filepath.Base(f)
		}
		return files
	}

	// Two writer instances write, then the barrier of checkpoint 1 reaches each.
	_ = sink.WriteBatchFor(0, []stream.Record[stream.KV[string, int]]{{Value: stream.KV[string, int]{Key: "a", Value: 1}}})
	_ = sink.WriteBatchFor(1, []stream.Record[stream.KV[string, int]]{{Value: stream.KV[string, int]{Key: "b", Value: 1}}})
	_ = sink.PreCommit(0, 1)
	_ = sink.PreCommit(1, 1)
	fmt.Println("pre-committed:", visible())

	// Checkpoint 1 completes.
	if err := sink.Commit(1); err != nil {
		panic(err)
	}
	fmt.Println("committed:", visible())
	b, _ := os.ReadFile(filepath.Join(dir, "part-c0000000001-i0000.jsonl"))
	fmt.Print(string(b))
	_ = sink.Close()
	// Output:
	// pre-committed: []
	// committed: [part-c0000000001-i0000.jsonl part-c0000000001-i0001.jsonl]
	// {"key":"a","value":1}
}
