package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// emitTo is an Output that hands records straight to a function; a runtime would batch them
// and count dead letters.
type emitTo[T any] func(stream.Record[T])

func (f emitTo[T]) Emit(r stream.Record[T])        { f(r) }
func (f emitTo[T]) DeadLetter(d stream.DeadLetter) { fmt.Println("dead letter:", d) }
func (f emitTo[T]) Watermark(int64)                {}

// readAll reads every split of src in batches of at most max, as the runtime's source actors
// do, and hands each batch to batch.
func readAll[T any](src stream.Source[T], splits, max int, batch func([]stream.Record[T])) error {
	ss, err := src.Splits(splits)
	if err != nil {
		return err
	}
	for _, s := range ss {
		for {
			var recs []stream.Record[T]
			_, err := s.Read(context.Background(), max, emitTo[T](func(r stream.Record[T]) { recs = append(recs, r) }))
			batch(recs)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		if err := s.Close(); err != nil {
			return err
		}
	}
	return nil
}

func ExampleCollectSink() {
	sink := stream.NewCollectSink[string]()
	src := stream.Slice([]string{"a", "b", "c", "d", "e"})
	// Two splits, read in batches of two: five batches.
	if err := readAll(src, 2, 2, func(batch []stream.Record[string]) {
		if err := sink.WriteBatch(batch); err != nil {
			fmt.Println(err)
		}
	}); err != nil {
		fmt.Println(err)
	}
	if err := sink.Close(); err != nil {
		fmt.Println(err)
	}
	fmt.Println(sink.Values(), sink.Len(), sink.Closed())
	// Output:
	// [a b c d e] 5 true
}

func ExampleStdoutSink() {
	type reading struct {
		Sensor string  `json:"sensor"`
		Temp   float64 `json:"temp"`
	}
	sink := stream.StdoutSink[reading]()
	if err := sink.WriteBatch([]stream.Record[reading]{
		{Value: reading{"kitchen", 21.5}},
		{Value: reading{"cellar", 12}},
	}); err != nil {
		fmt.Println(err)
	}
	if err := sink.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"sensor":"kitchen","temp":21.5}
	// {"sensor":"cellar","temp":12}
}

func ExampleLinesFrom() {
	input := "first\r\nsecond\n\nlast line, no newline"
	err := readAll(stream.LinesFrom("input", strings.NewReader(input)), 1, 10, func(batch []stream.Record[string]) {
		for _, r := range batch {
			fmt.Printf("%q\n", r.Value)
		}
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// "first"
	// "second"
	// ""
	// "last line, no newline"
}

// The smallest use: a source and a sink handed to the graph package.
func Example() {
	g := graph.New("numbers")
	nums := graph.From(g, stream.Slice([]int{1, 2, 3}))
	graph.Map(nums, func(n int) int { return n * n }).To(stream.StdoutSink[int]())
	if err := g.Run(context.Background(), graph.Parallelism(1)); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1
	// 4
	// 9
}
