package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode"

	"go.uber.org/goleak"
)

// reference is the contract in its plainest form, on one goroutine and without the engine:
// split the whole input on every rune that is neither a letter nor a number (a byte that
// is not valid UTF-8 decodes as utf8.RuneError, which is neither; so are "\r" and "\n"),
// lowercase each word, count, sort by count descending then word ascending, and print one
// JSON line per word.
func reference(data []byte) []byte {
	counts := map[string]int64{}
	notWord := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }
	for _, w := range strings.FieldsFunc(string(data), notWord) {
		counts[strings.ToLower(w)]++
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		a, b := words[i], words[j]
		if counts[a] != counts[b] {
			return counts[a] > counts[b]
		}
		return a < b
	})
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	for _, w := range words {
		if err := enc.Encode(struct {
			Word  string `json:"word"`
			Count int64  `json:"count"`
		}{w, counts[w]}); err != nil {
			panic(err)
		}
	}
	return out.Bytes()
}

// invalidUTF8 are byte sequences that do not decode: a lone continuation byte, bytes that
// never occur, a truncated two-byte sequence, an overlong encoding, a surrogate, a code
// point above U+10FFFF.
var invalidUTF8 = []string{"\x80", "\xff", "\xfe", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}

// multilingualInput builds a few thousand lines from testdata/multilingual.txt: its lines
// with their words shuffled and joined by spaces, tabs, nothing or a lone "\r"; LF and
// CRLF endings; invalid UTF-8 bytes at random byte offsets (which may also cut a valid
// character in two); one line of about 400 KB (longer than the source's read buffer); and
// a last line without a newline.
func multilingualInput(t testing.TB) []byte {
	t.Helper()
	seed, err := os.ReadFile(filepath.Join("testdata", "multilingual.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(seed), "\n"), "\n")
	r := rand.New(rand.NewPCG(1, 2))
	seps := []string{" ", " ", " ", "\t", "", "\r", ", ", "  "}
	var b bytes.Buffer
	for i := range 3000 {
		if i == 1500 {
			long := strings.Join(lines, " ")
			b.WriteString(strings.Repeat(long+"\t", 400_000/len(long)+1))
			b.WriteString("\r\n")
		}
		words := strings.Split(lines[r.IntN(len(lines))], " ")
		r.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
		var line strings.Builder
		for j, w := range words {
			if j > 0 {
				line.WriteString(seps[r.IntN(len(seps))])
			}
			line.WriteString(w)
		}
		s := line.String()
		if r.IntN(8) == 0 && len(s) > 0 {
			at := r.IntN(len(s) + 1)
			s = s[:at] + invalidUTF8[r.IntN(len(invalidUTF8))] + s[at:]
		}
		b.WriteString(s)
		if r.IntN(3) == 0 {
			b.WriteString("\r\n")
		} else {
			b.WriteString("\n")
		}
	}
	b.WriteString("last line without a newline: Ende ΤΈΛΟΣ конец 終わり")
	return b.Bytes()
}

func writeInput(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runInProcess runs the program's run function and returns its stdout; it fails the test
// on an error or on anything written to stderr (the engine logs only warnings and errors).
func runInProcess(t *testing.T, path string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{path}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v", err)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr is not empty:\n%s", stderr.String())
	}
	return stdout.Bytes()
}

// diff returns the first line where got and want differ, for a readable failure.
func diff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + itoa(i+1) + ": got " + quote(gl) + ", want " + quote(wl) + " (" + itoa(len(g)) + " lines, want " + itoa(len(w)) + ")"
		}
	}
	return ""
}

func itoa(i int) string     { b, _ := json.Marshal(i); return string(b) }
func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestMultilingual(t *testing.T) {
	defer goleak.VerifyNone(t)
	data := multilingualInput(t)
	path := writeInput(t, data)
	got := runInProcess(t, path)
	want := reference(data)
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from the reference: %s", diff(got, want))
	}
	// The input is meant to exercise the contract's corners: check that it does.
	for _, w := range []string{
		`{"word":"straße","count":`,   // ß, kept as is by ToLower
		`{"word":"σοφοσ","count":`,    // ToLower maps Σ to σ, never to final ς
		`{"word":"ς","count":`,        // final sigma as written
		`{"word":"ılık","count":`,     // dotless ı
		`{"word":"istanbul","count":`, // İ lowercases to plain i (simple case mapping)
		`{"word":"ёлка","count":`,     // Russian ё
		`{"word":"٣","count":`,        // Arabic-Indic digit: a number
		`{"word":"ǆungla","count":`,   // titlecase digraph ǅ lowercased
		`{"word":"mu","count":`,       // u + combining diaeresis: the mark splits
		`{"word":"ⅻ","count":`,        // Roman numeral (Nl): a number, lowercased
		`{"word":"<html>","count":`,   // must not appear: < and > are not letters
	} {
		found := bytes.Contains(got, []byte(w))
		if want := !strings.Contains(w, "<"); found != want {
			t.Errorf("output contains %s: %v, want %v", w, found, want)
		}
	}
	if n := bytes.Count(got, []byte("\n")); n < 300 {
		t.Errorf("only %d distinct words; the input should have hundreds", n)
	}
}

func TestMissingFile(t *testing.T) {
	defer goleak.VerifyNone(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{filepath.Join(t.TempDir(), "nosuch.txt")}, &stdout, &stderr)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("run on a missing file: %v, want an error wrapping fs.ErrNotExist", err)
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout is not empty: %q", stdout.String())
	}
}

func TestArguments(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, args := range [][]string{nil, {"a", "b"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("run with arguments %q: no error", args)
		}
	}
}

func TestEmptyFile(t *testing.T) {
	defer goleak.VerifyNone(t)
	if got := runInProcess(t, writeInput(t, nil)); len(got) > 0 {
		t.Errorf("empty file: output %q, want none", got)
	}
}

// TestBinary builds the program and runs it as a user would.
func TestBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no go tool in PATH (CI must have it)")
		}
		t.Skip("no go tool in PATH: install Go to run this test")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "wordcount")
	if out, err := exec.Command(goTool, "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("count", func(t *testing.T) {
		data := multilingualInput(t)
		path := writeInput(t, data)
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(exe, path)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\nstderr:\n%s", exe, err, stderr.String())
		}
		if want := reference(data); !bytes.Equal(stdout.Bytes(), want) {
			t.Errorf("stdout differs from the reference: %s", diff(stdout.Bytes(), want))
		}
		if stderr.Len() > 0 {
			t.Errorf("stderr is not empty:\n%s", stderr.String())
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string // in the message
	}{
		{"missing file", []string{filepath.Join(dir, "nosuch.txt")}, "no such file or directory"},
		{"directory", []string{dir}, "is a directory"},
		{"no argument", nil, "usage: wordcount FILE"},
		{"two arguments", []string{"a", "b"}, "usage: wordcount FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(exe, tc.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("%s %q: %v, want exit status 1", exe, tc.args, err)
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Errorf("stderr is not one line: %q", msg)
			}
			if !strings.HasPrefix(msg, "wordcount: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q: want \"wordcount: ...%s...\"", msg, tc.want)
			}
			if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine") {
				t.Errorf("stderr shows a panic: %q", msg)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout is not empty: %q", stdout.String())
			}
		})
	}
}

// alphabet mixes letters of many scripts, numbers, combining marks, punctuation, symbols,
// emoji, whitespace and line ends; randomText adds invalid UTF-8 besides.
var alphabet = []rune("aAbBzZßẞäÄöÖüÜσςΣΟλΛİIıiёЁжЖ中文字日本語カナーひ々한글اكتب٣١हिन्द०ทย๑" +
	"0123456789Ⅻ²½１ＡǅﬁKΩ\u0301\u0308\u0307\u093f\u064e\u200d\u200b\u00a0" +
	" \t\r\n.,;:!?'\"-_/\\<>&«»„“—…()[]{}#@$%€❤️🚀👍🏽\ufffd")

func randomText(r *rand.Rand) []byte {
	n := r.IntN(400)
	var b bytes.Buffer
	for range n {
		if r.IntN(40) == 0 {
			b.WriteString(invalidUTF8[r.IntN(len(invalidUTF8))])
			continue
		}
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.Bytes()
}

// TestRandomText checks the engine's output against the reference for random texts.
func TestRandomText(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := rand.New(rand.NewPCG(7, 11))
	cases := 40
	if testing.Short() {
		cases = 5
	}
	for i := range cases {
		data := randomText(r)
		got := runInProcess(t, writeInput(t, data))
		if want := reference(data); !bytes.Equal(got, want) {
			t.Fatalf("case %d, input %q: output differs from the reference: %s", i, data, diff(got, want))
		}
	}
}

// FuzzSplitWords checks the word splitter on its own against the reference's splitting.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"", "Hello, World", "Straße ΣΟΦΟΣ İı", "a\xffb", "हिन्दी ٣٤", "🚀x🚀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var got []string
		splitWords(line, func(w string) { got = append(got, w) })
		want := strings.FieldsFunc(line, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
		for i := range want {
			want[i] = strings.ToLower(want[i])
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
			t.Fatalf("splitWords(%q) = %q, want %q", line, got, want)
		}
	})
}
