// Package docblock keeps the generated parts of the docs in step with the code. A generated
// block of a Markdown file sits between two markers,
//
//	<!-- generated: NAME -->
//	...
//	<!-- end: NAME -->
//
// and a test that knows what NAME must hold calls Check: the test fails when the file says
// something else, and rewrites the block instead when EDDY_UPDATE_DOCS=1 is set.
package docblock

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// UpdateEnv is the environment variable that makes Check rewrite stale blocks.
const UpdateEnv = "EDDY_UPDATE_DOCS"

// Check compares the block name of the Markdown file at path with want (the lines between
// the markers) and fails t when they differ, or when the block is missing.
func Check(t testing.TB, path, name, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("docs: %v", err)
	}
	doc := string(b)
	got, start, end, err := block(doc, name)
	if err != nil {
		t.Fatalf("docs %s: %v", path, err)
	}
	want = strings.TrimRight(want, "\n") + "\n"
	if got == want {
		return
	}
	if os.Getenv(UpdateEnv) == "1" {
		if err := os.WriteFile(path, []byte(doc[:start]+want+doc[end:]), 0o644); err != nil {
			t.Fatalf("docs: %v", err)
		}
		t.Logf("docs %s: block %q rewritten", path, name)
		return
	}
	t.Errorf("docs %s: block %q is stale (run the test with %s=1 to rewrite it)\n--- the file has:\n%s--- the code gives:\n%s", path, name, UpdateEnv, got, want)
}

// block returns the content of block name in doc and where it starts and ends.
func block(doc, name string) (content string, start, end int, err error) {
	open, closing := fmt.Sprintf("<!-- generated: %s -->\n", name), fmt.Sprintf("<!-- end: %s -->", name)
	i := strings.Index(doc, open)
	if i < 0 {
		return "", 0, 0, fmt.Errorf("no %q marker", strings.TrimSpace(open))
	}
	start = i + len(open)
	j := strings.Index(doc[start:], closing)
	if j < 0 {
		return "", 0, 0, fmt.Errorf("no %q marker after %q", closing, strings.TrimSpace(open))
	}
	end = start + j
	return doc[start:end], start, end, nil
}
