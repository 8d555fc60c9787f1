package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var minimize = flag.Bool("windowcount.minimize", false, "on a mismatch against the reference, shrink the input and log the smallest failing one")

// binary is the program built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "windowcount-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "windowcount")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---------------------------------------------------------------------------------------
// Running the program

type runResult struct {
	stdout, stderr, late []byte
	exitCode             int
	err                  error // a failure to start or a timeout, not an exit status
}

// runBinary writes input to a file and runs the built program with -in and -late and
// the given flags.
func runBinary(t testing.TB, input []byte, flags []string) runResult {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	late := filepath.Join(dir, "late.jsonl")
	if err := os.WriteFile(in, input, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-in", in, "-late", late}, flags...)
	return runArgs(t, args, late)
}

func runArgs(t testing.TB, args []string, lateFile string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := runResult{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.exitCode = exit.ExitCode()
	default:
		res.err = err
	}
	if ctx.Err() != nil {
		res.err = fmt.Errorf("timed out: %v", ctx.Err())
	}
	if lateFile != "" {
		res.late, _ = os.ReadFile(lateFile)
	}
	return res
}

func modeFlags(m refMode) []string {
	ms := func(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
	var f []string
	if m.Window > 0 {
		f = append(f, "-window", ms(m.Window))
	}
	if m.Slide > 0 {
		f = append(f, "-slide", ms(m.Slide))
	}
	if m.Session > 0 {
		f = append(f, "-session", ms(m.Session))
	}
	if m.Lateness > 0 {
		f = append(f, "-lateness", ms(m.Lateness))
	}
	f = append(f, "-delay", ms(m.Delay))
	return f
}

// ---------------------------------------------------------------------------------------
// Comparing against the expectation

func splitLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// multisetDiff returns the lines of want missing from got and the lines of got not in want
// (with multiplicity).
func multisetDiff(want, got []string) (missing, extra []string) {
	count := map[string]int{}
	for _, l := range want {
		count[l]++
	}
	for _, l := range got {
		count[l]--
	}
	for _, l := range want {
		if count[l] > 0 {
			missing = append(missing, l)
			count[l]--
		}
	}
	for k, n := range count {
		for ; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}

type outKey struct {
	Key        string
	Start, End int64
}

// perWindow groups output lines by (key,start,end), keeping their order.
func perWindow(lines []string) map[outKey][]string {
	m := map[outKey][]string{}
	for _, l := range lines {
		var k struct {
			Key   string `json:"key"`
			Start int64  `json:"start"`
			End   int64  `json:"end"`
		}
		if err := json.Unmarshal([]byte(l), &k); err != nil {
			continue // a line that does not parse is reported by the multiset comparison
		}
		ok := outKey{k.Key, k.Start, k.End}
		m[ok] = append(m[ok], l)
	}
	return m
}

var lineNumber = regexp.MustCompile(`\bline (\d+)\b`)

// reportedLines returns the line numbers that stderr reports ("line N").
func reportedLines(stderr []byte) map[int]bool {
	got := map[int]bool{}
	for _, m := range lineNumber.FindAllSubmatch(stderr, -1) {
		n, err := strconv.Atoi(string(m[1]))
		if err == nil {
			got[n] = true
		}
	}
	return got
}

func clip(lines []string) []string {
	if len(lines) > 15 {
		return append(slices.Clip(lines[:15]), fmt.Sprintf("... and %d more", len(lines)-15))
	}
	return lines
}

// mismatches compares a run with the expectation and returns every difference found.
func mismatches(want refResult, got runResult) []string {
	var errs []string
	if got.err != nil {
		return []string{fmt.Sprintf("run: %v (stderr %q)", got.err, got.stderr)}
	}
	if got.exitCode != 0 {
		errs = append(errs, fmt.Sprintf("exit code %d, want 0; stderr:\n%s", got.exitCode, clipText(got.stderr)))
	}
	if bytes.Contains(got.stderr, []byte("panic:")) {
		errs = append(errs, fmt.Sprintf("panic on stderr:\n%s", clipText(got.stderr)))
	}
	gotOut := splitLines(got.stdout)
	if missing, extra := multisetDiff(want.Out, gotOut); len(missing)+len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("stdout differs from the reference (as a multiset): missing %d lines:\n  %s\nextra %d lines:\n  %s",
			len(missing), strings.Join(clip(missing), "\n  "), len(extra), strings.Join(clip(extra), "\n  ")))
	}
	wantSeq, gotSeq := perWindow(want.Out), perWindow(gotOut)
	var seqErrs []string
	for k, ws := range wantSeq {
		if gs := gotSeq[k]; !slices.Equal(ws, gs) {
			seqErrs = append(seqErrs, fmt.Sprintf("window %+v: want firings\n    %s\n  got\n    %s", k, strings.Join(ws, "\n    "), strings.Join(gs, "\n    ")))
		}
	}
	for k, gs := range gotSeq {
		if _, ok := wantSeq[k]; !ok {
			seqErrs = append(seqErrs, fmt.Sprintf("window %+v: want no firing, got\n    %s", k, strings.Join(gs, "\n    ")))
		}
	}
	if len(seqErrs) > 0 {
		slices.Sort(seqErrs)
		errs = append(errs, "per-window firing sequences differ:\n  "+strings.Join(clip(seqErrs), "\n  "))
	}
	if missing, extra := multisetDiff(want.Late, splitLines(got.late)); len(missing)+len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("late file differs from the reference: missing %d lines:\n  %s\nextra %d lines:\n  %s",
			len(missing), strings.Join(clip(missing), "\n  "), len(extra), strings.Join(clip(extra), "\n  ")))
	}
	reported := reportedLines(got.stderr)
	var notReported, wronglyReported []string
	for _, n := range want.Malformed {
		if !reported[n] {
			notReported = append(notReported, strconv.Itoa(n))
		}
		delete(reported, n)
	}
	for n := range reported {
		wronglyReported = append(wronglyReported, strconv.Itoa(n))
	}
	slices.Sort(wronglyReported)
	if len(notReported) > 0 {
		errs = append(errs, fmt.Sprintf("malformed lines not reported on stderr as \"line N\": %s", strings.Join(clip(notReported), " ")))
	}
	if len(wronglyReported) > 0 {
		errs = append(errs, fmt.Sprintf("lines reported on stderr that are not malformed: %s", strings.Join(clip(wronglyReported), " ")))
	}
	return errs
}

func clipText(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// ---------------------------------------------------------------------------------------
// The generator

var keyPool = []string{"a", "b", "key with space", "ü", `q"t`, "c/d", "e"}

// genInput returns a bursty, out-of-order input: 1 to 5 keys; timestamps that mostly
// advance with jitter; bursts of many records at nearly the same ts; records that jump
// back far (more than delay+lateness of every mode, so late) or a little; long gaps (that
// close sessions); sometimes negative timestamps; non-integer values (multiples of 1/4, so
// that every sum is exact whatever the order of the additions) and values in exponent
// form; extra fields and other field orders; malformed lines and blank lines.
func genInput(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	keys := slices.Clone(keyPool)
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	keys = keys[:1+r.IntN(5)]
	ts := int64(r.IntN(5000))
	if r.IntN(3) == 0 {
		ts = -int64(5000 + r.IntN(60000))
	}
	var b bytes.Buffer
	value := func() string {
		switch p := r.IntN(100); {
		case p < 65:
			return strconv.Itoa(r.IntN(21) - 5)
		case p < 90:
			return strconv.FormatFloat(float64(r.IntN(400)-200)/4, 'f', -1, 64)
		case p < 95:
			return []string{"1e2", "25e-2", "-0.5E1", "2.50", "1E0", "-7.25e+1"}[r.IntN(6)]
		default:
			return strconv.Itoa(r.IntN(2000) - 1000)
		}
	}
	record := func(t int64) {
		k, _ := json.Marshal(keys[r.IntN(len(keys))])
		v := value()
		switch p := r.IntN(100); {
		case p < 80:
			fmt.Fprintf(&b, `{"key":%s,"ts":%d,"value":%s}`, k, t, v)
		case p < 88:
			fmt.Fprintf(&b, `{"value":%s,"ts":%d,"key":%s}`, v, t, k)
		case p < 95:
			fmt.Fprintf(&b, `{"id":%d,"key":%s,"meta":{"ts":"x","value":[1]},"ts":%d,"value":%s}`, r.IntN(100), k, t, v)
		default:
			fmt.Fprintf(&b, ` { "key" : %s , "ts" : %d , "value" : %s } `, k, t, v)
		}
		b.WriteByte('\n')
	}
	malformed := func(t int64) {
		k, _ := json.Marshal(keys[r.IntN(len(keys))])
		forms := []string{
			`not json`,
			`{"key":%[1]s,"ts":"%[2]d","value":1}`,
			`{"key":%[1]s,"ts":%[2]d.5,"value":1}`,
			`{"key":%[1]s,"ts":%[2]d,"value":"x"}`,
			`{"key":5,"ts":%[2]d,"value":1}`,
			`{"ts":%[2]d,"value":1}`,
			`{"key":%[1]s,"value":1}`,
			`{"key":%[1]s,"ts":%[2]d}`,
			`[]`,
			`null`,
			`42`,
			`"text"`,
			`{}`,
			`{"key":%[1]s,"ts":%[2]d,"value":1`,
			`{"key":null,"ts":%[2]d,"value":1}`,
			`{"key":%[1]s,"ts":null,"value":1}`,
			`{"key":%[1]s,"ts":%[2]d,"value":null}`,
			`{"key":%[1]s,"ts":%[2]d,"value":true}`,
			`{"key":%[1]s,"ts":%[2]d,"value":"3"}`,
			`{"key":["a"],"ts":%[2]d,"value":1}`,
			`{"key":%[1]s,"ts":%[2]d,"value":1} trailing`,
		}
		f := forms[r.IntN(len(forms))]
		s := fmt.Sprintf(f, k, t)
		if i := strings.Index(s, "%!("); i >= 0 { // a form that does not use both arguments
			s = s[:i]
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	n := 200 + r.IntN(500)
	for i := 0; i < n; i++ {
		switch p := r.IntN(100); {
		case p < 4:
			b.WriteByte('\n')
		case p < 10:
			malformed(ts + int64(r.IntN(20000)))
		case p < 13: // a burst at nearly the same ts
			for range 10 + r.IntN(50) {
				record(ts + int64(r.IntN(60)-30))
			}
			ts += int64(r.IntN(30))
		case p < 18: // far back: late for every mode
			record(ts - int64(10000+r.IntN(40000)))
		case p < 22: // a long gap, closing sessions
			ts += int64(15000 + r.IntN(45000))
			record(ts)
		case p < 32: // a little back
			record(ts - int64(r.IntN(5000)))
		case p < 34: // a jump forward then back to the present
			record(ts + int64(r.IntN(10000)))
		default:
			ts += int64(r.IntN(1500) - 200)
			record(ts)
		}
	}
	return b.Bytes()
}

// ---------------------------------------------------------------------------------------
// Tests

var modes = []struct {
	name string
	mode refMode
}{
	{"tumbling/10s/lateness0/delay0", refMode{Window: 10000}},
	{"tumbling/10s/lateness5s/delay2s", refMode{Window: 10000, Lateness: 5000, Delay: 2000}},
	{"tumbling/500ms/lateness0/delay300ms", refMode{Window: 500, Delay: 300}},
	{"tumbling/3s/lateness1500ms/delay0", refMode{Window: 3000, Lateness: 1500}},
	{"hopping/10s/5s/lateness0/delay1s", refMode{Window: 10000, Slide: 5000, Delay: 1000}},
	{"hopping/9s/3s/lateness4s/delay0", refMode{Window: 9000, Slide: 3000, Lateness: 4000}},
	{"hopping/10s/4s/lateness3s/delay2500ms", refMode{Window: 10000, Slide: 4000, Lateness: 3000, Delay: 2500}},
	{"session/5s/lateness0/delay0", refMode{Session: 5000}},
	{"session/3s/lateness6s/delay2s", refMode{Session: 3000, Lateness: 6000, Delay: 2000}},
	{"session/1500ms/lateness0/delay500ms", refMode{Session: 1500, Delay: 500}},
	{"session/2s/lateness3s/delay0", refMode{Session: 2000, Lateness: 3000}},
}

var (
	seeds    = flag.Uint64("windowcount.seeds", 10, "number of generated inputs per mode")
	onlySeed = flag.Uint64("windowcount.seed", 0, "if not 0, run TestAgainstReference on this seed only")
)

// TestAgainstReference runs the program on generated inputs in every mode and compares
// stdout, the late file and the malformed lines reported on stderr with the reference.
func TestAgainstReference(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= *seeds; seed++ {
				if *onlySeed != 0 && seed != *onlySeed {
					continue
				}
				input := genInput(seed)
				want := reference(input, m.mode)
				got := runBinary(t, input, modeFlags(m.mode))
				if errs := mismatches(want, got); len(errs) > 0 {
					t.Errorf("seed %d, flags %q:\n%s", seed, modeFlags(m.mode), strings.Join(errs, "\n"))
					if *minimize {
						logMinimal(t, input, m.mode)
					}
				}
			}
		})
	}
}

// TestAgainstReferenceMicroBatch is TestAgainstReference in micro-batch mode, in batches of
// 7 records per split: the same output, the same late records, the same dead letters.
func TestAgainstReferenceMicroBatch(t *testing.T) {
	micro := []string{"-micro-batch", "1ms", "-micro-batch-records", "7"}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= min(*seeds, 3); seed++ {
				input := genInput(seed)
				want := reference(input, m.mode)
				got := runBinary(t, input, append(modeFlags(m.mode), micro...))
				if errs := mismatches(want, got); len(errs) > 0 {
					t.Errorf("seed %d, flags %q:\n%s", seed, append(modeFlags(m.mode), micro...), strings.Join(errs, "\n"))
				}
			}
		})
	}
}

// TestGeneratorCoverage guards the generator: the inputs must exercise late records,
// re-firings, malformed lines and negative timestamps in every mode.
func TestGeneratorCoverage(t *testing.T) {
	for _, m := range modes {
		var late, malformed, refirings, negative int
		for seed := uint64(1); seed <= *seeds; seed++ {
			res := reference(genInput(seed), m.mode)
			late += len(res.Late)
			malformed += len(res.Malformed)
			for _, seq := range perWindow(res.Out) {
				refirings += len(seq) - 1
			}
			for _, l := range res.Out {
				if strings.Contains(l, `"start":-`) {
					negative++
				}
			}
		}
		t.Logf("%s: %d late, %d malformed, %d re-firings, %d firings of negative windows", m.name, late, malformed, refirings, negative)
		if late == 0 || malformed == 0 || negative == 0 || (m.mode.Lateness > 0 && refirings == 0) {
			t.Errorf("%s: the generator does not cover the mode", m.name)
		}
	}
}

// logMinimal shrinks a failing input line by line while the program still disagrees with
// the reference, and logs the result.
func logMinimal(t *testing.T, input []byte, mode refMode) {
	t.Helper()
	fails := func(lines []string) bool {
		in := []byte(strings.Join(lines, "\n") + "\n")
		return len(mismatches(reference(in, mode), runBinary(t, in, modeFlags(mode)))) > 0
	}
	lines := strings.Split(strings.TrimSuffix(string(input), "\n"), "\n")
	for chunk := len(lines) / 2; chunk >= 1; chunk /= 2 {
		for i := 0; i < len(lines); {
			cand := slices.Concat(lines[:i], lines[min(i+chunk, len(lines)):])
			if len(cand) > 0 && fails(cand) {
				lines = cand
			} else {
				i += chunk
			}
		}
	}
	in := []byte(strings.Join(lines, "\n") + "\n")
	t.Logf("minimal failing input (flags %q):\n%s\nwant: %s\ngot:\n%s", modeFlags(mode), in,
		strings.Join(mismatches(reference(in, mode), runBinary(t, in, modeFlags(mode))), "\n"),
		runBinary(t, in, modeFlags(mode)).stdout)
}

type golden struct {
	name      string
	args      []string
	in        []byte
	out, late []string
	malformed []int
}

func readGolden(t *testing.T, path string) golden {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := golden{name: strings.TrimSuffix(filepath.Base(path), ".txt")}
	section := ""
	var in []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "-- ") && strings.HasSuffix(l, " --"):
			section = strings.TrimSuffix(strings.TrimPrefix(l, "-- "), " --")
		case section == "" && strings.HasPrefix(l, "args:"):
			g.args = strings.Fields(strings.TrimPrefix(l, "args:"))
		case section == "":
			// comments
		case section == "in":
			in = append(in, l)
		case section == "out" && l != "":
			g.out = append(g.out, l)
		case section == "late" && l != "":
			g.late = append(g.late, l)
		case section == "malformed":
			for _, f := range strings.Fields(l) {
				n, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("%s: malformed section: %v", path, err)
				}
				g.malformed = append(g.malformed, n)
			}
		}
	}
	g.in = []byte(strings.Join(in, "\n") + "\n")
	return g
}

// goldenMode turns the flags of a golden case into the reference's parameters.
func goldenMode(t *testing.T, args []string) refMode {
	t.Helper()
	fs := flag.NewFlagSet("golden", flag.ContinueOnError)
	window := fs.Duration("window", 0, "")
	slide := fs.Duration("slide", 0, "")
	session := fs.Duration("session", 0, "")
	lateness := fs.Duration("lateness", 0, "")
	delay := fs.Duration("delay", 0, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return refMode{Window: window.Milliseconds(), Slide: slide.Milliseconds(), Session: session.Milliseconds(),
		Lateness: lateness.Milliseconds(), Delay: delay.Milliseconds()}
}

// TestGolden runs the hand-written cases of testdata/*.txt (each explained in its
// comments), and checks that the reference agrees with them too. The out section lists
// the firings of each window in their order.
func TestGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, path := range paths {
		g := readGolden(t, path)
		t.Run(g.name, func(t *testing.T) {
			want := refResult{Out: g.out, Late: g.late, Malformed: g.malformed}
			ref := reference(g.in, goldenMode(t, g.args))
			if errs := mismatches(want, runResult{stdout: []byte(strings.Join(ref.Out, "\n")), late: []byte(strings.Join(ref.Late, "\n")),
				stderr: []byte(fmt.Sprint(lineReport(ref.Malformed)))}); len(errs) > 0 {
				t.Errorf("the reference disagrees with the golden case:\n%s", strings.Join(errs, "\n"))
			}
			if errs := mismatches(want, runBinary(t, g.in, g.args)); len(errs) > 0 {
				t.Errorf("flags %q, input:\n%s\n%s", g.args, g.in, strings.Join(errs, "\n"))
			}
		})
	}
}

func lineReport(ns []int) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "line %d: malformed\n", n)
	}
	return b.String()
}

// TestFlagErrors checks that bad invocations exit non-zero with a message and no panic.
func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"key":"a","ts":1,"value":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	late := filepath.Join(dir, "late.jsonl")
	cases := []struct {
		name    string
		args    []string
		oneLine bool
	}{
		{"missing -in file", []string{"-in", filepath.Join(dir, "does-not-exist.jsonl"), "-late", late, "-window", "10s"}, true},
		{"missing -in file, session", []string{"-in", filepath.Join(dir, "does-not-exist.jsonl"), "-late", late, "-session", "10s"}, true},
		{"neither -window nor -session", []string{"-in", in, "-late", late}, false},
		{"neither -window nor -session, with -slide", []string{"-in", in, "-late", late, "-slide", "5s"}, false},
		{"both -window and -session", []string{"-in", in, "-late", late, "-window", "10s", "-session", "5s"}, false},
		{"-slide without -window", []string{"-in", in, "-late", late, "-session", "10s", "-slide", "5s"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runArgs(t, c.args, "")
			if got.err != nil {
				t.Fatal(got.err)
			}
			if got.exitCode == 0 {
				t.Errorf("args %q: exit code 0, want non-zero; stdout %q, stderr %q", c.args, got.stdout, got.stderr)
			}
			stderr := strings.TrimSpace(string(got.stderr))
			if stderr == "" {
				t.Errorf("args %q: nothing on stderr", c.args)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("args %q: panic:\n%s", c.args, stderr)
			}
			if c.oneLine && strings.Contains(stderr, "\n") {
				t.Errorf("args %q: want a one-line error on stderr, got:\n%s", c.args, stderr)
			}
			if len(got.stdout) > 0 {
				t.Errorf("args %q: stdout %q, want nothing", c.args, got.stdout)
			}
		})
	}
}

// TestRunInProcess calls run directly (so that the race detector sees the engine) on a
// few generated inputs, and checks that no goroutine is left behind.
func TestRunInProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	for i, m := range []refMode{modes[1].mode, modes[5].mode, modes[8].mode} {
		input := genInput(uint64(100 + i))
		dir := t.TempDir()
		in, late := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "late.jsonl")
		if err := os.WriteFile(in, input, 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := run(ctx, append([]string{"-in", in, "-late", late}, modeFlags(m)...), &stdout, &stderr)
		cancel()
		got := runResult{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
		if err != nil {
			got.exitCode = 1
			fmt.Fprintf(&stderr, "run: %v\n", err)
		}
		got.late, _ = os.ReadFile(late)
		if errs := mismatches(reference(input, m), got); len(errs) > 0 {
			t.Errorf("flags %q:\n%s", modeFlags(m), strings.Join(errs, "\n"))
		}
	}
}
