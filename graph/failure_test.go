package graph_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
)

// gatedSource is a replayable source of the values 1..n in one split that stops before
// value gate+1 until the test opens it: a checkpoint taken while it waits there has exactly
// the values 1..gate behind it. Its offset is the position; it records every Seek.
type gatedSource struct {
	n, gate int64
	open    chan struct{} // closed by the test
	atGate  chan struct{} // closed when a split first waits at the gate
	once    sync.Once
	// mu guards seeks.
	mu    sync.Mutex
	seeks []int64
}

func newGatedSource(n, gate int64) *gatedSource {
	return &gatedSource{n: n, gate: gate, open: make(chan struct{}), atGate: make(chan struct{})}
}

func (s *gatedSource) Splits(int) ([]stream.Split[int64], error) {
	return []stream.Split[int64]{&gatedSplit{src: s}}, nil
}

func (s *gatedSource) seeked() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seeks)
}

type gatedSplit struct {
	src *gatedSource
	pos int64 // values 1..pos have been read
}

func (sp *gatedSplit) Read(ctx context.Context, max int, out stream.Output[int64]) (int, error) {
	s := sp.src
	if sp.pos >= s.n {
		return 0, io.EOF
	}
	end := min(s.n, sp.pos+int64(max))
	if sp.pos < s.gate {
		end = min(end, s.gate)
	} else {
		select {
		case <-s.open:
		default:
			// Nothing to read until the gate opens: wait briefly, as a split may.
			s.once.Do(func() { close(s.atGate) })
			select {
			case <-s.open:
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
			return 0, nil
		}
	}
	for v := sp.pos + 1; v <= end; v++ {
		out.Emit(stream.Record[int64]{Value: v})
	}
	n := int(end - sp.pos)
	sp.pos = end
	return n, nil
}

func (sp *gatedSplit) Offset() ([]byte, error) { return binary.AppendVarint(nil, sp.pos), nil }

func (sp *gatedSplit) Seek(off []byte) error {
	pos, n := binary.Varint(off)
	if n <= 0 {
		return fmt.Errorf("gated split: bad offset %x", off)
	}
	sp.pos = pos
	sp.src.mu.Lock()
	sp.src.seeks = append(sp.src.seeks, pos)
	sp.src.mu.Unlock()
	return nil
}

func (sp *gatedSplit) Close() error { return nil }

// flakySum sums values: the user function of the failure-policy test. Add panics on the
// values in fail: only the first time it meets each when once is set (a transient failure),
// every time otherwise.
type flakySum struct {
	fail   map[int64]bool
	once   bool
	failed *sync.Map // values that have failed, across the job's runs
}

func (flakySum) Zero() int64 { return 0 }

func (a flakySum) Add(acc, v int64) int64 {
	if a.fail[v] {
		if _, before := a.failed.LoadOrStore(v, true); !before || !a.once {
			panic(fmt.Sprintf("flaky value %d", v))
		}
	}
	return acc + v
}

func (flakySum) Result(acc int64) int64 { return acc }

// policyKeys is how many keys the failure-policy test sums over: more than a key group
// writes back to Badger at once (2048), so that state written back after the checkpoint is
// in the store when a restart comes.
const policyKeys = 6000

// sumsByKey is the reference: the sum of the values 1..upTo but those in skip, per key
// v%policyKeys.
func sumsByKey(upTo int64, skip ...int64) map[int64]int64 {
	sums := map[int64]int64{}
	for v := int64(1); v <= upTo; v++ {
		if !slices.Contains(skip, v) {
			sums[v%policyKeys] += v
		}
	}
	return sums
}

// diffSums describes how got differs from want, in a few keys.
func diffSums(got, want map[int64]int64) string {
	var diffs []string
	for k := range policyKeys {
		if g, w := got[int64(k)], want[int64(k)]; g != w {
			diffs = append(diffs, fmt.Sprintf("key %d: %d, want %d", k, g, w))
		}
	}
	if len(diffs) > 4 {
		diffs = append(diffs[:4], fmt.Sprintf("… (%d keys differ)", len(diffs)))
	}
	return fmt.Sprintf("%d keys, %d wanted; %s", len(got), len(want), strings.Join(diffs, "; "))
}

// committedSums reads the committed output of a two-phase JSONL sink of KV results, in
// commit order, and returns the last result per key.
func committedSums(t *testing.T, dir string) map[int64]int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	last := map[int64]int64{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kv stream.KV[int64, int64]
			if err := json.Unmarshal(sc.Bytes(), &kv); err != nil {
				t.Fatalf("%s: %q: %v", name, sc.Text(), err)
			}
			last[kv.Key] = kv.Value
		}
		_ = f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// TestFailurePolicies runs one job under each error policy, on the memory and on the Badger
// state backend: a source of 1..12000 that waits at 4000 until a checkpoint is complete (when
// the case takes one), summed per key v%6000 by a user function that fails on chosen values,
// into a two-phase sink. The committed output must be exact and the same on both backends.
// RestartStage restores from the last completed checkpoint (or from nothing), so a value
// that fails once counts exactly once; one that always fails fails the job after the
// restarts, as FailJob does at once.
func TestFailurePolicies(t *testing.T) {
	const n, gate = 12000, 4000
	tests := []struct {
		name       string
		policy     actor.ErrorPolicy
		fail       []int64
		once       bool
		checkpoint bool // take a checkpoint at the gate, then open it (else it is open)
		want       map[int64]int64
		wantErr    string // "" : the job succeeds
		dead       []int64
		restarts   int64
		seeks      []int64 // where the source rewound to, restart by restart
	}{
		{name: "skip", policy: actor.Skip, fail: []int64{9000, 10666}, once: true, checkpoint: true,
			want: sumsByKey(n, 9000, 10666), dead: []int64{9000, 10666}},
		{name: "restart-stage from the checkpoint", policy: actor.RestartStage, fail: []int64{9000, 10666}, once: true, checkpoint: true,
			want: sumsByKey(n), restarts: 2, seeks: []int64{gate, gate}},
		{name: "restart-stage before any checkpoint", policy: actor.RestartStage, fail: []int64{1000}, once: true,
			want: sumsByKey(n), restarts: 1},
		{name: "restart-stage on a value that always fails", policy: actor.RestartStage, fail: []int64{9000}, checkpoint: true,
			want: sumsByKey(gate), wantErr: "panic: flaky value 9000", dead: []int64{9000}, restarts: 3, seeks: []int64{gate, gate, gate}},
		{name: "fail-job", policy: actor.FailJob, fail: []int64{9000}, once: true, checkpoint: true,
			want: sumsByKey(gate), wantErr: "panic: flaky value 9000", dead: []int64{9000}},
	}
	outputs := map[string]map[int64]int64{}
	for _, backend := range []string{"memory", "badger"} {
		for _, tt := range tests {
			t.Run(backend+"/"+tt.name, func(t *testing.T) {
				store, err := persistence.OpenDirCheckpoints(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				outDir := t.TempDir()
				sink, err := stream.TwoPhaseJSONLSink[stream.KV[int64, int64]](outDir)
				if err != nil {
					t.Fatal(err)
				}
				src := newGatedSource(n, gate)
				if !tt.checkpoint {
					close(src.open)
				}
				fail := map[int64]bool{}
				for _, v := range tt.fail {
					fail[v] = true
				}
				g := graph.New("policies")
				vals := graph.From(g, stream.Source[int64](src), graph.Name("src"))
				sums := graph.Aggregate(graph.KeyBy(vals, func(v int64) int64 { return v % policyKeys }),
					stream.Aggregator[int64, int64, int64](flakySum{fail: fail, once: tt.once, failed: &sync.Map{}}), graph.Name("sum"))
				sums.To(sink, graph.Name("out"))
				var dl letters
				opts := []graph.JobOption{graph.Parallelism(1), graph.MaxKeyGroups(2), graph.BatchSize(64),
					graph.Checkpoints(store, time.Hour), graph.OnError(tt.policy), dl.option()}
				if backend == "badger" {
					db, err := persistence.OpenBadger(t.TempDir())
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					opts = append(opts, graph.BadgerState(db))
				}
				job := build(t, g, opts...)
				ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- job.Run(ctx) }()
				if tt.checkpoint {
					select {
					case <-src.atGate:
					case err := <-done:
						t.Fatalf("Run returned %v before the source reached the gate", err)
					}
					if err := job.Savepoint(ctx, "at-gate"); err != nil {
						t.Fatalf("checkpoint at the gate: %v", err)
					}
					close(src.open)
				}
				err = <-done

				switch {
				case tt.wantErr == "" && err != nil:
					t.Fatalf("Run: %v", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "stage sum (policies/sum/")):
					t.Fatalf("Run returned %v; want an error of stage sum with %q", err, tt.wantErr)
				}
				got := committedSums(t, outDir)
				if !maps.Equal(got, tt.want) {
					t.Errorf("committed sums: %s", diffSums(got, tt.want))
				}
				var dead []int64
				for _, d := range dl.all() {
					dead = append(dead, d.Value.(int64))
				}
				slices.Sort(dead)
				if !slices.Equal(dead, tt.dead) {
					t.Errorf("dead letters for %v; want %v", dead, tt.dead)
				}
				if st := statsOf(t, job, "sum"); st.Restarts != tt.restarts {
					t.Errorf("%d restarts; want %d", st.Restarts, tt.restarts)
				}
				if s := src.seeked(); !slices.Equal(s, tt.seeks) {
					t.Errorf("the source rewound to %v; want %v", s, tt.seeks)
				}
				outputs[tt.name+"/"+backend] = got
			})
		}
	}
	for _, tt := range tests {
		if m, b := outputs[tt.name+"/memory"], outputs[tt.name+"/badger"]; !maps.Equal(m, b) {
			t.Errorf("%s: memory and Badger differ: Badger gave %s", tt.name, diffSums(b, m))
		}
	}
}

// A state store that fails under a keyed stage fails the job with the store's error, under
// the default Skip policy too: it is no dead letter, and no record is dropped for it. The
// store is a real Badger database, closed under the running job.
func TestStateStoreFailureFailsTheJob(t *testing.T) {
	db, err := persistence.OpenBadger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := newGatedSource(400, 200)
	g := graph.New("store-fails")
	vals := graph.From(g, stream.Source[int64](src), graph.Name("src"))
	// Every value is its own key: each record's key is new, which the key filter answers
	// without a read, and goes to the store at write-back.
	graph.Count(graph.KeyBy(vals, func(v int64) int64 { return v }), graph.Name("count")).To(stream.NewCollectSink[stream.KV[int64, int64]]())
	var dl letters
	job := build(t, g, graph.Parallelism(1), graph.MaxKeyGroups(4), graph.BadgerState(db), dl.option())
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	select {
	case <-src.atGate:
	case err := <-done:
		t.Fatalf("Run returned %v before the source reached the gate", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	close(src.open)
	err = <-done
	if !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("Run returned %v; want the store's error (persistence.ErrClosed)", err)
	}
	for _, w := range []string{`stage "count"`, "the state store"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if ds := dl.all(); len(ds) > 0 {
		t.Errorf("%d dead letters, the first %+v; want none: a store failure is no dead letter", len(ds), ds[0])
	}
}

// RestartStage restarts from the last completed checkpoint: a job without checkpoints has
// none to restart from, so Build refuses it rather than restart it from a start its sources
// may not have.
func TestRestartStageNeedsCheckpoints(t *testing.T) {
	g := graph.New("no-checkpoints")
	graph.Count(graph.KeyBy(graph.From(g, stream.Slice([]int64{1, 2, 3})), func(v int64) int64 { return v })).
		To(stream.NewCollectSink[stream.KV[int64, int64]]())
	_, err := g.Build(quiet, graph.OnError(actor.RestartStage))
	if err == nil || !strings.Contains(err.Error(), "restart-stage") || !strings.Contains(err.Error(), "checkpoints") {
		t.Fatalf("Build: %v; want an error saying restart-stage needs checkpoints", err)
	}
}
