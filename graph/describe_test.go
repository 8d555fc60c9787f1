package graph_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	describeParallelism  = 2
	describeMaxKeyGroups = 8
)

// describedGraph is source → map → filter → KeyBy → count → sink, plus a merge of two
// sources split by a partition into two sinks.
func describedGraph() *graph.Graph {
	g := graph.New("described")
	nums := graph.From(g, stream.Generate(100, func(i int64) int64 { return i }), graph.Name("numbers"))
	squares := graph.Map(nums, func(v int64) int64 { return v * v }, graph.Name("square"))
	even := squares.Filter(func(v int64) bool { return v%2 == 0 }, graph.Name("even"))
	counts := graph.Count(graph.KeyBy(even, func(v int64) int64 { return v % 10 }), graph.Name("count"))
	counts.To(stream.NewCollectSink[stream.KV[int64, int64]](), graph.Name("counts"))

	left := graph.From(g, stream.Slice([]string{"a", "b"}), graph.Name("left"))
	right := graph.From(g, stream.Slice([]string{"c", "d"}), graph.Name("right"))
	parts := graph.Partition(graph.Merge(left, right), 2, func(s string) int { return len(s) % 2 }, graph.Name("split"))
	parts[0].To(stream.NewCollectSink[string](), graph.Name("even-length"))
	parts[1].To(stream.NewCollectSink[string](), graph.Name("odd-length"))
	return g
}

func TestDescribeGolden(t *testing.T) {
	job := build(t, describedGraph(), graph.Parallelism(describeParallelism), graph.MaxKeyGroups(describeMaxKeyGroups))
	d := job.Describe()
	js, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "describe.json.golden", append(js, '\n'))
	checkGolden(t, "describe.mmd.golden", []byte(d.Mermaid()))

	var back graph.Description
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("the JSON description does not decode: %v", err)
	}
	if back.Mermaid() != d.Mermaid() {
		t.Error("the description does not survive a JSON round trip")
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestDescribeFusion checks the physical plan: stateless stages are fused into the vertex
// before them, keyed stages run one instance per key group, and records cross between actors
// only at KeyBy.
func TestDescribeFusion(t *testing.T) {
	d := build(t, describedGraph(), graph.Parallelism(describeParallelism), graph.MaxKeyGroups(describeMaxKeyGroups)).Describe()
	vertices := map[string]graph.VertexInfo{}
	for _, v := range d.Vertices {
		vertices[v.Name] = v
	}
	if len(vertices) != 4 {
		t.Fatalf("vertices %+v; want numbers, count, left and right", d.Vertices)
	}
	tests := []struct {
		vertex    string
		kind      string
		instances int
		stages    []string
	}{
		// No hop per map or filter: they run in the source's actor.
		{"numbers", "source", describeParallelism, []string{"numbers", "square", "even"}},
		{"count", "keyed", describeMaxKeyGroups, []string{"count", "counts"}},
		// A merge and what follows it run in the actor of each of its inputs.
		{"left", "source", describeParallelism, []string{"left", "merge-7", "split", "split.0", "even-length", "split.1", "odd-length"}},
		{"right", "source", describeParallelism, []string{"right", "merge-7", "split", "split.0", "even-length", "split.1", "odd-length"}},
	}
	for _, tt := range tests {
		v, ok := vertices[tt.vertex]
		if !ok {
			t.Errorf("no vertex %q in %+v", tt.vertex, d.Vertices)
			continue
		}
		if v.Kind != tt.kind || v.Instances != tt.instances {
			t.Errorf("vertex %q is %s × %d; want %s × %d", tt.vertex, v.Kind, v.Instances, tt.kind, tt.instances)
		}
		if !slices.Equal(v.Stages, tt.stages) {
			t.Errorf("vertex %q runs %q; want %q", tt.vertex, v.Stages, tt.stages)
		}
	}
	want := []graph.ChannelInfo{{From: "numbers", To: "count", Port: 0, Partitioning: "hash"}}
	if !slices.Equal(d.Channels, want) {
		t.Errorf("channels %+v; want only the KeyBy exchange %+v", d.Channels, want)
	}
	for _, s := range d.Stages {
		if s.Name == "count" && s.Key != "int64" {
			t.Errorf("stage count is keyed by %q; want int64", s.Key)
		}
	}
}

// TestDescribeKeyedChain checks that a keyed stage after a keyed stage is a second exchange,
// and that the instance count follows MaxKeyGroups.
func TestDescribeKeyedChain(t *testing.T) {
	g := graph.New("chain")
	words := graph.From(g, stream.Slice([]string{"a", "b", "a"}), graph.Name("words"))
	perWord := graph.Count(graph.KeyBy(words, func(w string) string { return w }), graph.Name("per-word"))
	byCount := graph.Count(graph.KeyBy(perWord, func(kv stream.KV[string, int64]) int64 { return kv.Value }, graph.WithCodec(stream.JSON[stream.KV[string, int64]]())), graph.Name("per-count"))
	byCount.To(stream.NewCollectSink[stream.KV[int64, int64]](), graph.Name("out"))
	d := build(t, g, graph.Parallelism(1), graph.MaxKeyGroups(4)).Describe()
	want := []graph.ChannelInfo{
		{From: "words", To: "per-word", Partitioning: "hash"},
		{From: "per-word", To: "per-count", Partitioning: "hash"},
	}
	if !slices.Equal(d.Channels, want) {
		t.Errorf("channels %+v; want %+v", d.Channels, want)
	}
	for _, v := range d.Vertices {
		if v.Kind == "keyed" && v.Instances != 4 {
			t.Errorf("keyed vertex %q has %d instances; want MaxKeyGroups 4", v.Name, v.Instances)
		}
	}
}
