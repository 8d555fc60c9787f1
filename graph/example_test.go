package graph_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Upper-casing words: Map is fused into the source's actor.
func ExampleMap() {
	g := graph.New("shout")
	words := graph.From(g, stream.Slice([]string{"stream", "actor", "graph"}))
	loud := graph.Map(words, strings.ToUpper)
	out := stream.NewCollectSink[string]()
	loud.To(out)
	if err := g.Run(context.Background(), graph.Parallelism(2)); err != nil {
		fmt.Println(err)
		return
	}
	got := out.Values()
	slices.Sort(got) // two splits: no fixed order across them
	fmt.Println(got)
	// Output:
	// [ACTOR GRAPH STREAM]
}

// Counting words: KeyBy sends each word to its key group, where Count keeps a running count
// per word. EmitAtEnd sends each word's count once, when the bounded input has ended.
func ExampleCount() {
	g := graph.New("wordcount")
	lines := graph.From(g, stream.Slice([]string{"to be or not to be", "that is the question"}))
	words := graph.FlatMap(lines, func(line string, emit func(string)) {
		for _, w := range strings.Fields(line) {
			emit(w)
		}
	})
	counts := graph.Count(graph.KeyBy(words, func(w string) string { return w }), graph.Emit(stream.EmitAtEnd))
	out := stream.NewCollectSink[stream.KV[string, int64]]()
	counts.To(out)
	if err := g.Run(context.Background(), graph.Parallelism(2)); err != nil {
		fmt.Println(err)
		return
	}
	got := out.Values()
	slices.SortFunc(got, func(a, b stream.KV[string, int64]) int { return strings.Compare(a.Key, b.Key) })
	for _, kv := range got {
		fmt.Println(kv.Key, kv.Value)
	}
	// Output:
	// be 2
	// is 1
	// not 1
	// or 1
	// question 1
	// that 1
	// the 1
	// to 2
}

// Deduplicating orders per customer with per-key state; repeats go to a side output.
func ExampleProcess() {
	type order struct{ Customer, ID string }
	seen := stream.NewMapState[string, bool]("seen")
	repeats := stream.NewTag[string]("repeats")
	dedup := stream.KeyedProcess[string, order, string]{
		OnRecord: func(ctx stream.Context[string], o order, out stream.Emitter[string]) error {
			if _, dup := seen.Get(ctx, o.ID); dup {
				repeats.Emit(out, ctx.Key()+"/"+o.ID)
				return nil
			}
			seen.Put(ctx, o.ID, true)
			out.Emit(ctx.Key() + "/" + o.ID)
			return nil
		},
	}

	g := graph.New("dedup")
	orders := graph.From(g, stream.Slice([]order{{"ann", "1"}, {"bob", "1"}, {"ann", "1"}, {"ann", "2"}, {"bob", "1"}}))
	// order is a struct: it needs a codec to cross KeyBy.
	perCustomer := graph.KeyBy(orders, func(o order) string { return o.Customer }, graph.WithCodec(stream.JSON[order]()))
	unique := graph.Process(perCustomer, dedup, graph.Name("dedup"))
	firsts, dups := stream.NewCollectSink[string](), stream.NewCollectSink[string]()
	unique.To(firsts)
	graph.SideOutput(unique, repeats).To(dups)
	if err := g.Run(context.Background(), graph.Parallelism(2)); err != nil {
		fmt.Println(err)
		return
	}
	f, d := firsts.Values(), dups.Values()
	slices.Sort(f)
	slices.Sort(d)
	fmt.Println("unique:", f)
	fmt.Println("repeats:", d)
	// Output:
	// unique: [ann/1 ann/2 bob/1]
	// repeats: [ann/1 bob/1]
}

// Drawing a job: map and filter run in the source's actors; records cross between actors
// only where KeyBy re-partitions them (the thick arrow).
func ExampleDescription_Mermaid() {
	g := graph.New("clicks")
	clicks := graph.From(g, stream.Slice([]string{"ann", "bob", "ann"}), graph.Name("clicks"))
	users := graph.Map(clicks, strings.TrimSpace, graph.Name("trim")).
		Filter(func(u string) bool { return u != "" }, graph.Name("non-empty"))
	perUser := graph.Count(graph.KeyBy(users, func(u string) string { return u }), graph.Name("per-user"))
	perUser.To(stream.NewCollectSink[stream.KV[string, int64]](), graph.Name("out"))
	job, err := g.Build(graph.Parallelism(2), graph.MaxKeyGroups(16))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(job.Describe().Mermaid())
	// Output:
	// flowchart LR
	//   subgraph v0["clicks × 2 splits"]
	//     s0["clicks<br/>source: string"]
	//     s1["trim<br/>map: string"]
	//     s2["non-empty<br/>filter: string"]
	//   end
	//   subgraph v1["per-user × 16 key groups"]
	//     s3["per-user<br/>count: stream.KV[string,int64]"]
	//     s4["out<br/>sink: stream.KV[string,int64]"]
	//   end
	//   s0 --> s1
	//   s1 --> s2
	//   s2 == "hash by string" ==> s3
	//   s3 --> s4
}

// The package's wordcount, over a file: each word's count once the file has been read.
func Example() {
	book := filepath.Join(os.TempDir(), "eddy-example-book.txt")
	if err := os.WriteFile(book, []byte("the cat\nthe hat\n"), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	defer os.Remove(book)

	g := graph.New("wordcount")
	lines := graph.From(g, stream.Lines(book))
	words := graph.FlatMap(lines, func(line string, emit func(string)) {
		for _, w := range strings.Fields(line) {
			emit(w)
		}
	})
	counts := graph.Count(graph.KeyBy(words, func(w string) string { return w }),
		graph.Emit(stream.EmitAtEnd))
	out := stream.NewCollectSink[stream.KV[string, int64]]()
	counts.To(out)
	if err := g.Run(context.Background(), graph.Parallelism(2)); err != nil {
		fmt.Println(err)
		return
	}
	got := out.Values()
	slices.SortFunc(got, func(a, b stream.KV[string, int64]) int { return strings.Compare(a.Key, b.Key) })
	fmt.Println(got)
	// Output:
	// [{cat 1} {hat 1} {the 2}]
}
