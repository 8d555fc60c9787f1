package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// referenceRanking counts the clicks of events [0, n) per user on one goroutine.
func referenceRanking(n int64) []UserCount {
	counts := map[string]int64{}
	for i := range n {
		counts[click(i).User]++
	}
	var rows []UserCount
	for u, c := range counts {
		rows = append(rows, UserCount{u, c})
	}
	sortRanking(rows)
	return rows
}

// output is what the test reads back from the program's output.
type output struct {
	top        []UserCount
	total      int64
	statsIn    map[string]int64 // records in, per stage
	firstLine  string
	topHeading string
}

func parse(t *testing.T, out string) output {
	t.Helper()
	o := output{statsIn: map[string]int64{}}
	lines := strings.Split(out, "\n")
	o.firstLine = lines[0]
	section := ""
	for _, line := range lines {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			section = ""
		case strings.HasPrefix(line, "top "):
			o.topHeading = line
		case f[0] == "rank":
			section = "top"
		case f[0] == "stage":
			section = "stats"
		case strings.HasPrefix(line, "total events: "):
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("total line %q: %v", line, err)
			}
			o.total = n
		case section == "top":
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil || len(f) != 4 || f[0] != strconv.Itoa(len(o.top)+1) {
				t.Fatalf("leaderboard row %q: want rank, user, clicks, share", line)
			}
			o.top = append(o.top, UserCount{f[1], n})
		case section == "stats":
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("stats row %q: %v", line, err)
			}
			o.statsIn[f[0]] = n
		}
	}
	return o
}

func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		events      int64
		parallelism int
	}{
		{0, 1},
		{1, 1},
		{3_000, 1},
		{10_007, 3},
		{20_000, 8},
	} {
		t.Run(fmt.Sprintf("events=%d,parallelism=%d", tc.events, tc.parallelism), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"-events", strconv.FormatInt(tc.events, 10), "-parallelism", strconv.Itoa(tc.parallelism)}
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("run %q: %v\nstderr:\n%s", args, err, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr is not empty:\n%s", stderr.String())
			}
			o := parse(t, stdout.String())
			if !strings.HasPrefix(o.firstLine, "flowchart") {
				t.Errorf("output begins with %q, want the Mermaid flowchart line", o.firstLine)
			}
			want := referenceRanking(tc.events)
			seen := int64(len(want)) // users who clicked
			if wantHeading := fmt.Sprintf("top %d of %d users", min(topN, len(want)), len(want)); o.topHeading != wantHeading {
				t.Errorf("heading %q, want %q", o.topHeading, wantHeading)
			}
			want = want[:min(topN, len(want))]
			if fmt.Sprint(o.top) != fmt.Sprint(want) {
				t.Errorf("leaderboard\n got %v\nwant %v", o.top, want)
			}
			if o.total != tc.events {
				t.Errorf("total events %d, want %d", o.total, tc.events)
			}
			if got, ok := o.statsIn["clicks"]; !ok || got != tc.events {
				t.Errorf("stats: stage clicks took in %d records (listed: %v), want %d", got, ok, tc.events)
			}
			// The count takes in partial counts (local aggregation): at least one per user,
			// at most one per click.
			if got, ok := o.statsIn["clicks-per-user"]; !ok || got < seen || got > tc.events {
				t.Errorf("stats: stage clicks-per-user took in %d records (listed: %v), want %d to %d", got, ok, seen, tc.events)
			}
			if t.Failed() {
				t.Logf("output:\n%s", stdout.String())
			}
		})
	}
}

func TestSkew(t *testing.T) {
	rows := referenceRanking(100_000)
	if len(rows) != users {
		t.Fatalf("%d users clicked, want all %d", len(rows), users)
	}
	if first, last := rows[0].Count, rows[len(rows)-1].Count; first < 10*last {
		t.Errorf("top user %d clicks, bottom %d: the distribution is not skewed", first, last)
	}
}

func TestBadFlags(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, args := range [][]string{
		{"-events", "-1"},
		{"-parallelism", "0"},
		{"-bogus"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil {
			t.Errorf("run %q: no error", args)
			continue
		}
		var usage usageError
		if isUsage := errors.As(err, &usage); isUsage != (args[0] == "-bogus" || args[0] == "extra") {
			t.Errorf("run %q: %v; usage error %v", args, err, isUsage)
		}
		if stdout.Len() > 0 {
			t.Errorf("run %q: stdout %q, want nothing", args, stdout.String())
		}
	}
}
