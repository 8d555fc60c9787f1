package keycount_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/docblock"
	"github.com/eddyflow/eddy/internal/keycount"
	"github.com/eddyflow/eddy/stream"
)

// The cluster job's physical plan in docs/architecture.md is the one cmd/eddy builds.
func TestArchitectureDiagram(t *testing.T) {
	sink, err := stream.TwoPhaseJSONLSink[keycount.Output](t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "input.jsonl")
	if err := os.WriteFile(in, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	g := keycount.Graph("keycount", in, 0, sink)
	job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(32))
	if err != nil {
		t.Fatal(err)
	}
	docblock.Check(t, "../../docs/architecture.md", "cluster-plan", "```mermaid\n"+strings.TrimRight(job.Describe().Mermaid(), "\n")+"\n```")
}
