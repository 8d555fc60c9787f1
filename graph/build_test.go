package graph_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// click is a struct type: it has no built-in codec, so it needs one to cross KeyBy.
type click struct {
	User string `json:"user"`
	N    int    `json:"n"`
}

// point is a struct key type: it has no built-in codec to hash it with.
type point struct{ X, Y int }

func numbers(g *graph.Graph, name string) graph.Stream[int] {
	return graph.From(g, stream.Slice(ints(10)), graph.Name(name))
}

func clicks(g *graph.Graph) graph.Stream[click] {
	return graph.From(g, stream.Slice([]click{{"ann", 1}, {"bob", 2}}), graph.Name("clicks"))
}

func byUser(c click) string { return c.User }

func TestBuildErrors(t *testing.T) {
	double := func(v int) int { return 2 * v }
	tests := []struct {
		name  string
		graph func(g *graph.Graph)
		opts  []graph.JobOption
		// want are substrings of the error: the problem and the stage it is about.
		want []string
	}{
		{
			name: "map result never used",
			graph: func(g *graph.Graph) {
				graph.Map(numbers(g, "src"), double, graph.Name("double"))
			},
			want: []string{`stage "double" (map)`, "not consumed (dangling)"},
		},
		{
			name: "source with nothing after it",
			graph: func(g *graph.Graph) {
				numbers(g, "lonely")
			},
			want: []string{`stage "lonely" (source)`, "dangling"},
		},
		{
			name: "partition output not consumed",
			graph: func(g *graph.Graph) {
				parts := graph.Partition(numbers(g, "src"), 2, func(v int) int { return v % 2 }, graph.Name("split"))
				parts[0].To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "split.1" (partition-out)`, "dangling"},
		},
		{
			name: "broadcast output not consumed",
			graph: func(g *graph.Graph) {
				outs := graph.Broadcast(numbers(g, "src"), 3, graph.Name("copy"))
				outs[0].To(stream.NewCollectSink[int]())
				outs[2].To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "copy.1" (broadcast-out)`, "dangling"},
		},
		{
			name: "side output not consumed",
			graph: func(g *graph.Graph) {
				p := graph.Process(graph.KeyBy(numbers(g, "src"), double), stream.KeyedProcess[int, int, int]{
					OnRecord: func(stream.Context[int], int, stream.Emitter[int]) error { return nil },
				}, graph.Name("proc"))
				p.To(stream.NewCollectSink[int]())
				graph.SideOutput(p, stream.NewTag[int]("late"))
			},
			want: []string{`stage "proc.late" (side)`, "dangling"},
		},
		{
			name: "cycle through a merge junction",
			graph: func(g *graph.Graph) {
				loop := graph.NewMerge[int](g, graph.Name("loop"))
				loop.Add(numbers(g, "src"))
				back := graph.Map(loop.Out(), double, graph.Name("back"))
				loop.Add(back)
				loop.Out().To(stream.NewCollectSink[int]())
			},
			want: []string{`cycle: "loop" → "back" → "loop"`, "acyclic"},
		},
		{
			name: "junction fed by its own output",
			graph: func(g *graph.Graph) {
				loop := graph.NewMerge[int](g, graph.Name("self"))
				loop.Add(numbers(g, "src"))
				loop.Add(loop.Out())
				loop.Out().To(stream.NewCollectSink[int]())
			},
			want: []string{`cycle: "self" → "self"`},
		},
		{
			name: "duplicate stage name",
			graph: func(g *graph.Graph) {
				graph.Map(numbers(g, "src"), double, graph.Name("x")).
					Filter(func(int) bool { return true }, graph.Name("x")).
					To(stream.NewCollectSink[int]())
			},
			want: []string{`duplicate stage name "x" (a map and a filter)`},
		},
		{
			name: "negative state TTL",
			graph: func(g *graph.Graph) {
				graph.Count(graph.KeyBy(numbers(g, "src"), func(v int) int { return v % 3 }), graph.Name("ttl"),
					graph.StateTTL(stream.EventTimeTTL(-time.Second))).To(stream.NewCollectSink[stream.KV[int, int64]]())
			},
			want: []string{`stage "ttl"`, "state TTL -1s is negative"},
		},
		{
			name: "window without windows",
			graph: func(g *graph.Graph) {
				graph.Window(graph.KeyBy(numbers(g, "src"), func(v int) int { return v % 3 }), stream.WindowAssigner{}, agg.Count[int](),
					graph.Name("w")).To(stream.NewCollectSink[stream.WindowResult[int, int64]]())
			},
			want: []string{`stage "w"`, "windows: none chosen"},
		},
		{
			name: "global windows without a trigger",
			graph: func(g *graph.Graph) {
				graph.Window(graph.KeyBy(numbers(g, "src"), func(v int) int { return v % 3 }), stream.Global(), agg.Count[int](),
					graph.Name("w")).To(stream.NewCollectSink[stream.WindowResult[int, int64]]())
			},
			want: []string{`stage "w"`, "give a CountTrigger"},
		},
		{
			name: "empty join interval",
			graph: func(g *graph.Graph) {
				byMod := func(v int) int { return v % 3 }
				graph.IntervalJoin(graph.KeyBy(numbers(g, "a"), byMod), graph.KeyBy(numbers(g, "b"), byMod), time.Second, -time.Second,
					func(a, b int) int { return a + b }, graph.Name("j")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "j"`, "is empty"},
		},
		{
			name: "struct crosses KeyBy without a codec",
			graph: func(g *graph.Graph) {
				graph.Count(graph.KeyBy(clicks(g), byUser), graph.Name("per-user")).
					To(stream.NewCollectSink[stream.KV[string, int64]]())
			},
			want: []string{`stage "per-user"`, "graph_test.click", `from "clicks"`, "without a Codec", "graph.WithCodec"},
		},
		{
			name: "key type without a codec",
			graph: func(g *graph.Graph) {
				k := graph.KeyBy(numbers(g, "src"), func(v int) point { return point{v, v} })
				graph.Count(k).To(stream.NewCollectSink[stream.KV[point, int64]]())
			},
			want: []string{`keyBy after "src"`, "key type graph_test.point has no built-in codec", "graph.WithKeyCodec"},
		},
		{
			name: "KeyBy WithCodec of the wrong type",
			graph: func(g *graph.Graph) {
				k := graph.KeyBy(clicks(g), byUser, graph.WithCodec(stream.JSON[string]()))
				graph.Count(k, graph.Name("per-user")).To(stream.NewCollectSink[stream.KV[string, int64]]())
			},
			want: []string{`stage "per-user"`, `the codec for "clicks"`, "not a codec of graph_test.click"},
		},
		{
			name: "stage WithCodec of the wrong type",
			graph: func(g *graph.Graph) {
				graph.Map(numbers(g, "src"), double, graph.Name("double"), graph.WithCodec(stream.JSON[string]())).
					To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "double": WithCodec`, "not a codec of int"},
		},
		{
			name: "WithKeyCodec of the wrong type",
			graph: func(g *graph.Graph) {
				k := graph.KeyBy(numbers(g, "src"), func(v int) point { return point{v, v} }, graph.WithKeyCodec(stream.JSON[string]()))
				graph.Count(k).To(stream.NewCollectSink[stream.KV[point, int64]]())
			},
			want: []string{`keyBy after "src": WithKeyCodec`, "not a codec of graph_test.point"},
		},
		{
			name: "nil map function",
			graph: func(g *graph.Graph) {
				graph.Map[int, int](numbers(g, "src"), nil, graph.Name("m")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "m": map function is nil`},
		},
		{
			name: "nil try-map function",
			graph: func(g *graph.Graph) {
				graph.TryMap[int, int](numbers(g, "src"), nil, graph.Name("parse")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "parse": map function is nil`},
		},
		{
			name: "nil filter function",
			graph: func(g *graph.Graph) {
				numbers(g, "src").Filter(nil, graph.Name("f")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "f": filter function is nil`},
		},
		{
			name: "nil flatMap function",
			graph: func(g *graph.Graph) {
				graph.FlatMap[int, int](numbers(g, "src"), nil, graph.Name("fm")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "fm": flatMap function is nil`},
		},
		{
			name: "nil partition function",
			graph: func(g *graph.Graph) {
				for _, p := range graph.Partition(numbers(g, "src"), 2, nil, graph.Name("split")) {
					p.To(stream.NewCollectSink[int]())
				}
			},
			want: []string{`stage "split": partition function is nil`},
		},
		{
			name: "partition into no outputs",
			graph: func(g *graph.Graph) {
				for _, p := range graph.Partition(numbers(g, "src"), 0, func(int) int { return 0 }, graph.Name("split")) {
					p.To(stream.NewCollectSink[int]())
				}
			},
			want: []string{`stage "split": 0 outputs; want at least 1`},
		},
		{
			name: "nil CoMap functions",
			graph: func(g *graph.Graph) {
				c := graph.Connect(numbers(g, "a"), graph.From(g, stream.Slice([]string{"x"}), graph.Name("b")))
				graph.CoMap[int, string, string](c, nil, nil, graph.Name("co")).To(stream.NewCollectSink[string]())
			},
			want: []string{`stage "co": first map function is nil`, `stage "co": second map function is nil`},
		},
		{
			name: "nil key function",
			graph: func(g *graph.Graph) {
				graph.Count(graph.KeyBy[int, int](numbers(g, "src"), nil)).To(stream.NewCollectSink[stream.KV[int, int64]]())
			},
			want: []string{`keyBy after "src": key function is nil`},
		},
		{
			name: "nil reduce function",
			graph: func(g *graph.Graph) {
				graph.Reduce(graph.KeyBy(numbers(g, "src"), func(v int) int { return v }), nil).
					To(stream.NewCollectSink[stream.KV[int, int]]())
			},
			want: []string{`reduce after "src": reduce function is nil`},
		},
		{
			name: "nil aggregator",
			graph: func(g *graph.Graph) {
				graph.Aggregate[int, int, int, int](graph.KeyBy(numbers(g, "src"), func(v int) int { return v }), nil, graph.Name("agg")).
					To(stream.NewCollectSink[stream.KV[int, int]]())
			},
			want: []string{`stage "agg": aggregator is nil`},
		},
		{
			name: "nil OnRecord",
			graph: func(g *graph.Graph) {
				graph.Process(graph.KeyBy(numbers(g, "src"), func(v int) int { return v }), stream.KeyedProcess[int, int, int]{}, graph.Name("proc")).
					To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "proc": OnRecord is nil`},
		},
		{
			name: "nil sink",
			graph: func(g *graph.Graph) {
				numbers(g, "src").To(nil, graph.Name("out"))
			},
			want: []string{`stage "out": sink is nil`},
		},
		{
			name: "nil source",
			graph: func(g *graph.Graph) {
				graph.From[int](g, nil, graph.Name("src")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "src": source is nil`},
		},
		{
			name: "source that cannot be split",
			graph: func(g *graph.Graph) {
				graph.From(g, stream.Channel[int](nil), graph.Name("feed")).To(stream.NewCollectSink[int]())
			},
			want: []string{`source "feed"`, "nil channel"},
		},
		{
			name:  "empty graph",
			graph: func(*graph.Graph) {},
			want:  []string{"the graph has no stages"},
		},
		{
			name: "merge junction with no inputs",
			graph: func(g *graph.Graph) {
				numbers(g, "src").To(stream.NewCollectSink[int]())
				graph.NewMerge[int](g, graph.Name("j")).Out().To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "j" (merge): it has no inputs`},
		},
		{
			name: "no source",
			graph: func(g *graph.Graph) {
				graph.NewMerge[int](g, graph.Name("j")).Out().To(stream.NewCollectSink[int]())
			},
			want: []string{"the graph has no source"},
		},
		{
			name: "merge of a stream from another graph",
			graph: func(g *graph.Graph) {
				other := graph.New("other")
				graph.Merge(numbers(g, "mine"), numbers(other, "theirs")).To(stream.NewCollectSink[int]())
			},
			want: []string{`input "theirs" belongs to graph "other"`},
		},
		{
			name: "CoMap of a stream from another graph",
			graph: func(g *graph.Graph) {
				other := graph.New("other")
				c := graph.Connect(numbers(g, "mine"), numbers(other, "theirs"))
				graph.CoMap(c, double, double, graph.Name("co")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "co": input "theirs" belongs to graph "other", not "job"`},
		},
		{
			name: "merge of an empty Stream",
			graph: func(g *graph.Graph) {
				graph.Merge(numbers(g, "src"), graph.Stream[int]{}).To(stream.NewCollectSink[int]())
			},
			want: []string{"empty Stream"},
		},
		{
			name: "side output taken twice",
			graph: func(g *graph.Graph) {
				p := graph.Process(graph.KeyBy(numbers(g, "src"), double), stream.KeyedProcess[int, int, int]{
					OnRecord: func(stream.Context[int], int, stream.Emitter[int]) error { return nil },
				}, graph.Name("proc"))
				p.To(stream.NewCollectSink[int]())
				tag := stream.NewTag[int]("late")
				graph.SideOutput(p, tag, graph.Name("late-1")).To(stream.NewCollectSink[int]())
				graph.SideOutput(p, tag, graph.Name("late-2")).To(stream.NewCollectSink[int]())
			},
			want: []string{`stage "proc": side output "late" taken twice`},
		},
	}
	okGraph := func(g *graph.Graph) { numbers(g, "src").To(stream.NewCollectSink[int]()) }
	for _, o := range []struct {
		name string
		opt  graph.JobOption
		want string
	}{
		{"parallelism", graph.Parallelism(-1), "parallelism -1: want at least 1"},
		{"zero parallelism", graph.Parallelism(0), "parallelism 0: want at least 1"},
		{"max key groups", graph.MaxKeyGroups(-2), "max key groups -2: want at least 1"},
		{"zero max key groups", graph.MaxKeyGroups(0), "max key groups 0: want at least 1"},
		{"batch size", graph.BatchSize(-3), "batch size -3: want at least 1"},
		{"zero batch size", graph.BatchSize(0), "batch size 0: want at least 1"},
		{"credits", graph.Credits(-4), "credits -4: want at least 1"},
		{"zero credits", graph.Credits(0), "credits 0: want at least 1"},
		{"linger", graph.Linger(-time.Millisecond), "linger -1ms: want more than 0"},
		{"zero linger", graph.Linger(0), "linger 0s: want more than 0"},
		{"zero idle timeout", graph.IdleTimeout(0), "idle timeout 0s: want more than 0"},
		{"zero watermark interval", graph.WatermarkInterval(0), "watermark interval 0s: want more than 0"},
		{"error policy", graph.OnError(actor.ErrorPolicy(99)), "unknown error policy 99"},
	} {
		tests = append(tests, struct {
			name  string
			graph func(g *graph.Graph)
			opts  []graph.JobOption
			want  []string
		}{name: "invalid " + o.name, graph: okGraph, opts: []graph.JobOption{o.opt}, want: []string{"build job: config: " + o.want}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := graph.New("job")
			tt.graph(g)
			job, err := g.Build(append([]graph.JobOption{quiet}, tt.opts...)...)
			if err == nil {
				t.Fatalf("Build succeeded (%v); want an error with %q", job.Describe().Stages, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "build job: ") {
				t.Errorf("error %q does not say it is from building job", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestBuildReportsEveryMistake checks that one Build reports all the mistakes of a graph, not
// the first one only.
func TestBuildReportsEveryMistake(t *testing.T) {
	g := graph.New("job")
	src := numbers(g, "src")
	graph.Map[int, int](src, nil, graph.Name("nil-map")).To(stream.NewCollectSink[int]())
	graph.Map(src, func(v int) int { return v }, graph.Name("unused"))
	src.Filter(func(int) bool { return true }, graph.Name("dup")).To(stream.NewCollectSink[int](), graph.Name("dup"))
	graph.Count(graph.KeyBy(clicks(g), byUser), graph.Name("per-user")).To(stream.NewCollectSink[stream.KV[string, int64]]())
	numbers(g, "alone")

	_, err := g.Build(quiet)
	if err == nil {
		t.Fatal("Build succeeded; want every mistake reported")
	}
	for _, w := range []string{
		`stage "nil-map": map function is nil`,
		`stage "unused" (map): its output is not consumed`,
		`duplicate stage name "dup"`,
		`stage "per-user": records of type graph_test.click`,
		`stage "alone" (source): its output is not consumed`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v does not unwrap to the list of mistakes", err)
	}
	if n := len(joined.Unwrap()); n != 5 {
		t.Errorf("%d mistakes reported, want 5:\n%v", n, err)
	}
}

// TestBuildCodecs checks the ways to give a struct the codec it needs to cross KeyBy, and a
// struct key the codec it is hashed with.
func TestBuildCodecs(t *testing.T) {
	tests := []struct {
		name  string
		graph func(g *graph.Graph)
	}{
		{"WithCodec on KeyBy", func(g *graph.Graph) {
			k := graph.KeyBy(clicks(g), byUser, graph.WithCodec(stream.JSON[click]()))
			graph.Count(k).To(stream.NewCollectSink[stream.KV[string, int64]]())
		}},
		{"Stream.WithCodec", func(g *graph.Graph) {
			k := graph.KeyBy(clicks(g).WithCodec(stream.JSON[click]()), byUser)
			graph.Count(k).To(stream.NewCollectSink[stream.KV[string, int64]]())
		}},
		{"WithCodec on the stage before KeyBy", func(g *graph.Graph) {
			m := graph.Map(clicks(g), func(c click) click { return c }, graph.WithCodec(stream.JSON[click]()))
			graph.Count(graph.KeyBy(m, byUser)).To(stream.NewCollectSink[stream.KV[string, int64]]())
		}},
		{"Stream.WithCodec after KeyBy is written", func(g *graph.Graph) {
			s := clicks(g)
			graph.Count(graph.KeyBy(s, byUser)).To(stream.NewCollectSink[stream.KV[string, int64]]())
			s.WithCodec(stream.JSON[click]())
		}},
		{"WithKeyCodec for a struct key", func(g *graph.Graph) {
			k := graph.KeyBy(numbers(g, "src"), func(v int) point { return point{v, v} }, graph.WithKeyCodec(stream.JSON[point]()))
			graph.Count(k).To(stream.NewCollectSink[stream.KV[point, int64]]())
		}},
		{"built-in record type", func(g *graph.Graph) {
			graph.Count(graph.KeyBy(numbers(g, "src"), func(v int) int { return v % 3 })).To(stream.NewCollectSink[stream.KV[int, int64]]())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := graph.New("job")
			tt.graph(g)
			build(t, g)
		})
	}
}

// A job with checkpoints refuses stages whose state would not be restored, and sources that
// cannot rewind, rather than recover without them.
func TestBuildCheckpointsNeedSnapshots(t *testing.T) {
	store, err := persistence.OpenDirCheckpoints(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	byMod := func(v int) int { return v % 3 }
	tests := []struct {
		name  string
		graph func(g *graph.Graph)
		want  string
	}{
		{"channel source", func(g *graph.Graph) {
			graph.From(g, stream.Channel(make(chan int)), graph.Name("ch")).To(stream.NewCollectSink[int]())
		}, `source "ch" cannot rewind`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := graph.New("ckpt")
			tt.graph(g)
			_, err := g.Build(graph.Checkpoints(store, time.Second), quiet)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build() = %v, want %q", err, tt.want)
			}
		})
	}
	g := graph.New("ckpt")
	keyed := graph.KeyBy(numbers(g, "src"), byMod)
	graph.Count(keyed).To(stream.NewCollectSink[stream.KV[int, int64]]())
	graph.Window(keyed, stream.Tumbling(time.Second), agg.Count[int]()).To(stream.NewCollectSink[stream.WindowResult[int, int64]]())
	if _, err := g.Build(graph.Checkpoints(store, time.Second), quiet); err != nil {
		t.Fatalf("a counting and windowing job with checkpoints: %v", err)
	}
}
