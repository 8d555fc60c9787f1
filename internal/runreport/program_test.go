package runreport

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The acceptance test: a program whose Map panics on some lines of a file. Without a limit
// it exits 0, its summary counts them and each dead letter names file:line; with
// -max-dead-letters below the count it exits 1 with a message naming the limit.
func TestProgramWithPanickingMap(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "panicky")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/panicky").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	path, bad := writeFile(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 0},
		{[]string{"-max-dead-letters", fmt.Sprint(len(bad))}, 0},
		{[]string{"-max-dead-letters", "3"}, 1},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr strings.Builder
			cmd := exec.Command(bin, append(tc.args, path)...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			out := stderr.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			named := regexp.MustCompile(regexp.QuoteMeta(path)+`:(\d+): panic: a bad line`).FindAllStringSubmatch(out, -1)
			if tc.code == 0 {
				if len(named) != len(bad) {
					t.Errorf("%d dead letters name file:line, want %d:\n%s", len(named), len(bad), out)
				}
				want := fmt.Sprintf("panicky: 100 records in, %d out, %d dead letters, 0 late", 100-len(bad), len(bad))
				if !strings.Contains(out, want) {
					t.Errorf("no summary %q in:\n%s", want, out)
				}
				return
			}
			if !strings.Contains(out, "more than 3, the limit (graph.MaxDeadLetters, -max-dead-letters)") {
				t.Errorf("the failure does not name the limit:\n%s", out)
			}
		})
	}
}
