//go:build !race

// The race detector's slowdown makes 10,000,000 lines take minutes: this case runs only
// without it (the plain `go test ./...` of CI runs it).

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The acceptance case: 10,000,000 Zipf lines, peak heap under 64 MiB, the top 10 exact and
// in order. The program runs in a process of its own.
func TestTenMillionLines(t *testing.T) {
	const n, imax = 10_000_000, 1_000_000
	path := filepath.Join(t.TempDir(), "zipf.txt")
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	z := rand.NewZipf(rand.New(rand.NewPCG(42, 42)), 1.1, 1, imax)
	counts := make([]uint32, imax+1)
	var buf []byte
	for range n {
		r := z.Uint64()
		counts[r]++
		buf = strconv.AppendUint(append(buf[:0], "item-"...), r, 10)
		w.Write(append(buf, '\n'))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	exact := map[string]uint64{}
	distinct := 0
	for r, c := range counts {
		if c > 0 {
			distinct++
		}
		if c > 1000 {
			exact["item-"+strconv.Itoa(r)] = uint64(c)
		}
	}
	counts = nil
	t.Logf("generated %d lines, %d distinct, in %v", n, distinct, time.Since(start))

	start = time.Now()
	cmd := exec.Command(os.Args[0], "-in", path, "-k", "10")
	cmd.Env = append(os.Environ(), "TOPK_RUN_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("topk: %v: %s", err, e.String())
	}
	elapsed := time.Since(start)
	items, est := parse(t, o.String())
	checkTop(t, items, exactTop(exact, 10))
	if d := float64(est) / float64(distinct); d < 0.98 || d > 1.02 {
		t.Errorf("distinct %d, exact %d", est, distinct)
	}
	var peak uint64
	if _, err := fmt.Sscanf(e.String(), "peak_heap_bytes %d", &peak); err != nil {
		t.Fatalf("stderr %q: %v", e.String(), err)
	}
	t.Logf("10M lines in %v: peak_heap_bytes %d (%.1f MiB), distinct %d (exact %d)", elapsed, peak, float64(peak)/(1<<20), est, distinct)
	if peak >= 64<<20 {
		t.Errorf("peak heap %d bytes, not under 64 MiB", peak)
	}
	if strings.Contains(e.String(), "may be up to") {
		t.Errorf("the program could not prove its counts exact: %s", e.String())
	}
}
