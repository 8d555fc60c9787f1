package docblock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of stopping the test.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(f string, a ...any) { r.failed = append(r.failed, f) }
func (r *recorder) Fatalf(f string, a ...any) { r.failed = append(r.failed, f); panic(r) }

// check calls Check, stopping where a Fatalf would stop a test.
func check(r *recorder, path, name, want string) {
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
	}()
	Check(r, path, name, want)
}
func (r *recorder) Logf(string, ...any) {}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.md")
	doc := "# Title\n\n<!-- generated: plan -->\nold\n<!-- end: plan -->\ntail\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	check(r, path, "plan", "old")
	if len(r.failed) != 0 {
		t.Errorf("an up-to-date block failed: %v", r.failed)
	}
	check(r, path, "plan", "new")
	if len(r.failed) != 1 || !strings.Contains(r.failed[0], "stale") {
		t.Errorf("a stale block: %v", r.failed)
	}
	r.failed = nil
	check(r, path, "other", "x")
	if len(r.failed) != 1 {
		t.Errorf("a missing block: %v", r.failed)
	}

	t.Setenv(UpdateEnv, "1")
	r.failed = nil
	check(r, path, "plan", "new")
	b, _ := os.ReadFile(path)
	if len(r.failed) != 0 || string(b) != "# Title\n\n<!-- generated: plan -->\nnew\n<!-- end: plan -->\ntail\n" {
		t.Errorf("rewrite: %v, file %q", r.failed, b)
	}
}
