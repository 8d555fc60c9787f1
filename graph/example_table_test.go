package graph_test

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Stock per warehouse from a changelog of stock items: the items' table is regrouped by
// warehouse and summed; an item that moves is taken out of its old warehouse's sum first.
func ExampleAggregateTable() {
	type stock struct {
		Warehouse string
		Units     int
	}
	g := graph.New("stock")
	changes := graph.From(g, stream.Slice([]stream.KV[string, stock]{
		{Key: "apples", Value: stock{"north", 10}},
		{Key: "pears", Value: stock{"north", 5}},
		{Key: "plums", Value: stock{"south", 7}},
		{Key: "apples", Value: stock{"south", 12}}, // apples move south, with 12 units
	}))
	items := graph.ToTable(changes)
	perWarehouse := graph.AggregateTable(items, func(_ string, s stock) string { return s.Warehouse },
		sumUnits[stock]{units: func(s stock) int { return s.Units }})
	out := stream.NewCollectSink[stream.KV[string, int]]()
	perWarehouse.ToStream().To(out)
	if err := g.Run(context.Background(), graph.Parallelism(1)); err != nil {
		fmt.Println(err)
		return
	}
	// Apply the changelog: what the table holds at the end.
	table := map[string]int{}
	for _, r := range out.Records() {
		if r.Kind == stream.Retract {
			delete(table, r.Value.Key)
		} else {
			table[r.Value.Key] = r.Value.Value
		}
	}
	for _, w := range slices.Sorted(maps.Keys(table)) {
		fmt.Println(w, table[w])
	}
	// Output:
	// north 5
	// south 19
}

// sumUnits sums what units says of each row, and takes it back out.
type sumUnits[T any] struct{ units func(T) int }

func (sumUnits[T]) Zero() int                  { return 0 }
func (s sumUnits[T]) Add(acc int, v T) int     { return acc + s.units(v) }
func (s sumUnits[T]) Retract(acc int, v T) int { return acc - s.units(v) }
func (sumUnits[T]) Result(acc int) int         { return acc }
