package keycount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	want := map[string]int{"a": 2, "b": 1}
	for _, tt := range []struct {
		name  string
		files map[string]string
		bad   string // a part of the error; "" for none
	}{
		{"exact", map[string]string{"p1.jsonl": `{"key":"a","seq":1}` + "\n" + `{"key":"b","seq":1}` + "\n", "p2.jsonl": `{"key":"a","seq":2}` + "\n"}, ""},
		{"twice", map[string]string{"p1.jsonl": `{"key":"a","seq":1}` + "\n" + `{"key":"b","seq":1}` + "\n", "p2.jsonl": `{"key":"a","seq":2}` + "\n" + `{"key":"a","seq":1}` + "\n"}, "seq 1 committed 2 times"},
		{"missing", map[string]string{"p1.jsonl": `{"key":"a","seq":1}` + "\n" + `{"key":"b","seq":1}` + "\n"}, "seq 2 committed 0 times"},
		{"extra", map[string]string{"p1.jsonl": `{"key":"a","seq":1}` + "\n" + `{"key":"a","seq":2}` + "\n" + `{"key":"b","seq":1}` + "\n" + `{"key":"c","seq":1}` + "\n"}, "4 committed lines, want 3"},
		{"pending is not output", map[string]string{"p1.jsonl": `{"key":"a","seq":1}` + "\n" + `{"key":"b","seq":1}` + "\n", "p2.jsonl.pending": `{"key":"a","seq":2}` + "\n"}, "seq 2 committed 0 times"},
		{"garbage", map[string]string{"p1.jsonl": "{nope\n"}, "nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := Check(dir, want)
			if tt.bad == "" && err != nil || tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)) {
				t.Errorf("Check = %v, want %q", err, tt.bad)
			}
		})
	}
}
