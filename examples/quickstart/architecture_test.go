package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/eddyflow/eddy/internal/docblock"
)

// The physical plan in docs/architecture.md is this program's, as it prints it.
func TestArchitectureDiagram(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-events", "1000", "-parallelism", "2"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	plan, _, ok := strings.Cut(out.String(), "\n\n")
	if !ok || !strings.HasPrefix(plan, "flowchart") {
		t.Fatalf("quickstart printed no Mermaid plan first:\n%s", out.String())
	}
	docblock.Check(t, "../../docs/architecture.md", "quickstart-plan", "```mermaid\n"+plan+"\n```")
}
