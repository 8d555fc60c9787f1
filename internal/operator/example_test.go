package operator_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

type emitTo[T any] func(stream.Record[T])

func (f emitTo[T]) Emit(r stream.Record[T])        { f(r) }
func (f emitTo[T]) DeadLetter(d stream.DeadLetter) { fmt.Println("dead letter:", d) }
func (f emitTo[T]) Watermark(int64)                {}

// readAll reads every split of src in turn, in reads of at most max records, and hands each
// read's records to batch.
func readAll[T any](src stream.Source[T], max int, batch func([]stream.Record[T])) error {
	splits, err := src.Splits(1)
	if err != nil {
		return err
	}
	for _, s := range splits {
		for {
			var recs []stream.Record[T]
			_, err := s.Read(context.Background(), max, emitTo[T](func(r stream.Record[T]) { recs = append(recs, r) }))
			if len(recs) > 0 {
				batch(recs)
			}
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

// Counting numbers by their remainder modulo 3, with a running count sent once per batch for
// the keys the batch changed.
func ExampleNewAggregateOperator() {
	nums := stream.Generate(int64(12), func(i int64) int64 { return i })
	counts := operator.NewAggregateOperator(
		func(n int64) int64 { return n % 3 },
		agg.Count[int64](),
		stream.EmitPerBatch,
		func(r stream.Record[stream.KV[int64, int64]]) {
			fmt.Printf("  %d: %d\n", r.Value.Key, r.Value.Value)
		})
	err := readAll(nums, 5, func(batch []stream.Record[int64]) {
		fmt.Printf("batch of %d\n", len(batch))
		for _, r := range batch {
			if err := counts.Process(r); err != nil {
				fmt.Println(err)
			}
		}
		counts.EndBatch()
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// batch of 5
	//   0: 2
	//   1: 2
	//   2: 1
	// batch of 5
	//   2: 3
	//   0: 4
	//   1: 3
	// batch of 2
	//   1: 4
	//   2: 4
}
