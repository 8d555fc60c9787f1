package graph

import (
	"fmt"

	"github.com/eddyflow/eddy/stream"
)

// Table is a keyed table: the latest value per key of a changelog, as Kafka Streams' KTable
// is the table side of the stream-table duality. Its rows live in the state of a keyed stage
// (checkpointed with it); what flows on is its changelog (ToStream), in which a row's update
// is a retraction of the old row followed by an insert of the new one, and a delete is a
// retraction. Tables join with tables (JoinTables) and regroup into aggregated tables
// (AggregateTable); a stream joins with a table through JoinTable on its changelog.
type Table[K comparable, V any] struct {
	changes Stream[stream.KV[K, V]]
}

// ToStream returns the table's changelog: for every change of a row, a retraction of the old
// row (if there was one) and then an insert of the new row (if it was not deleted).
func (t Table[K, V]) ToStream() Stream[stream.KV[K, V]] { return t.changes }

// Name returns the name of the stage that holds the table.
func (t Table[K, V]) Name() string { return t.changes.Name() }

// ToTable materialises a changelog as a table: an insert of KV{k, v} sets row k to v (an
// upsert), a retraction of KV{k, ·} deletes row k. Records of a key are applied in the order
// they arrive. The changelog's values cross a KeyBy as JSON unless opts give WithCodec for
// stream.KV[K, V]; K needs a built-in codec (or WithKeyCodec).
func ToTable[K comparable, V any](changelog Stream[stream.KV[K, V]], opts ...Option) Table[K, V] {
	keyed := KeyBy(changelog, func(kv stream.KV[K, V]) K { return kv.Key }, withDefaultCodec[stream.KV[K, V]](opts)...)
	row := stream.NewValueState[V]("row")
	fn := stream.KeyedProcess[K, stream.KV[K, V], stream.KV[K, V]]{
		OnRecord: func(ctx stream.Context[K], in stream.KV[K, V], out stream.Emitter[stream.KV[K, V]]) error {
			old, had := row.Get(ctx)
			if had {
				out.Retract(stream.KV[K, V]{Key: in.Key, Value: old})
			}
			if ctx.Kind() == stream.Retract {
				row.Clear(ctx)
				return nil
			}
			row.Set(ctx, in.Value)
			out.Emit(in)
			return nil
		},
	}
	return Table[K, V]{changes: process(keyed, fn, "table", stageOnly(opts))}
}

// JoinKind says which rows a table–table join keeps.
type JoinKind uint8

const (
	// InnerJoin keeps the keys that have a row in both tables.
	InnerJoin JoinKind = iota
	// LeftJoin keeps every key of the left table.
	LeftJoin
	// OuterJoin keeps every key of either table.
	OuterJoin
)

func (k JoinKind) String() string {
	switch k {
	case InnerJoin:
		return "inner"
	case LeftJoin:
		return "left"
	case OuterJoin:
		return "outer"
	}
	return fmt.Sprintf("join-kind(%d)", uint8(k))
}

// sides holds the rows of both tables of a join for one key, and is what flows between the
// tables' changelogs and the join's keyed stage.
type sides[A, B any] struct {
	A   A    `json:"a"`
	B   B    `json:"b"`
	IsB bool `json:"isB,omitempty"`
}

// JoinTables joins two tables by key (Kafka Streams' KTable–KTable join): the result is a
// table whose row for key k is join(a, hasA, b, hasB) of k's rows, kept as kind says (for an
// inner join both are there; for a left join a is; for an outer join at least one is). When
// either side changes, the result row is retracted and inserted again, so the result's
// changelog applied to a table is the join of the two tables after every change. join must
// be a function of its arguments only: the join keeps the rows of both sides, not its
// results, and retracts a result by computing it again.
func JoinTables[K comparable, A, B, O any](a Table[K, A], b Table[K, B], kind JoinKind,
	join func(a A, hasA bool, b B, hasB bool) O, opts ...Option) Table[K, O] {
	type in = stream.KV[K, sides[A, B]]
	left := Map(a.changes, func(kv stream.KV[K, A]) in { return in{Key: kv.Key, Value: sides[A, B]{A: kv.Value}} })
	right := Map(b.changes, func(kv stream.KV[K, B]) in { return in{Key: kv.Key, Value: sides[A, B]{B: kv.Value, IsB: true}} })
	g := a.changes.g()
	if kind > OuterJoin {
		g.errorf("join of tables %q and %q: unknown join kind %v", a.Name(), b.Name(), kind)
	}
	if join == nil {
		g.errorf("join of tables %q and %q: join function is nil", a.Name(), b.Name())
	}
	keyed := KeyBy(Merge(left, right), func(kv in) K { return kv.Key }, withDefaultCodec[in](opts)...)
	rowA, rowB := stream.NewValueState[A]("a"), stream.NewValueState[B]("b")
	result := func(ctx stream.Context[K]) (O, bool) {
		va, hasA := rowA.Get(ctx)
		vb, hasB := rowB.Get(ctx)
		keep := hasA && hasB || kind == LeftJoin && hasA || kind == OuterJoin && (hasA || hasB)
		if !keep {
			var zero O
			return zero, false
		}
		return join(va, hasA, vb, hasB), true
	}
	fn := stream.KeyedProcess[K, in, stream.KV[K, O]]{
		OnRecord: func(ctx stream.Context[K], kv in, out stream.Emitter[stream.KV[K, O]]) error {
			if old, ok := result(ctx); ok {
				out.Retract(stream.KV[K, O]{Key: kv.Key, Value: old})
			}
			switch {
			case ctx.Kind() == stream.Retract && kv.Value.IsB:
				rowB.Clear(ctx)
			case ctx.Kind() == stream.Retract:
				rowA.Clear(ctx)
			case kv.Value.IsB:
				rowB.Set(ctx, kv.Value.B)
			default:
				rowA.Set(ctx, kv.Value.A)
			}
			if now, ok := result(ctx); ok {
				out.Emit(stream.KV[K, O]{Key: kv.Key, Value: now})
			}
			return nil
		},
	}
	return Table[K, O]{changes: process(keyed, fn, "join-tables", stageOnly(opts))}
}

// groupedRow is a table row on its way to the group it belongs to.
type groupedRow[G comparable, V any] struct {
	Group G `json:"g"`
	Value V `json:"v"`
}

// groupState is a group's accumulator and how many rows it holds.
type groupState[A any] struct {
	Acc  A     `json:"acc"`
	Rows int64 `json:"rows"`
}

// AggregateTable regroups the rows of t by group(k, v) and aggregates each group with agg
// (Kafka Streams' KGroupedTable.aggregate): when a row changes, its old value is retracted
// from its old group before its new value is added to its new group, so agg must retract
// (stream.Retracter: Count, Sum, Avg do). The result is a table of one row per non-empty
// group; a group whose last row goes is deleted. Accumulators cross the exchange as JSON.
func AggregateTable[K comparable, V any, G comparable, A, R any](t Table[K, V], group func(k K, v V) G,
	agg stream.Aggregator[V, A, R], opts ...Option) Table[G, R] {
	g := t.changes.g()
	retracter, ok := agg.(stream.Retracter[V, A])
	if !ok {
		g.errorf("aggregate of table %q: the aggregator %T cannot retract (it does not implement stream.Retracter), which a table's updates need", t.Name(), agg)
	}
	if group == nil {
		g.errorf("aggregate of table %q: group function is nil", t.Name())
	}
	type row = groupedRow[G, V]
	rows := Map(t.changes, func(kv stream.KV[K, V]) row { return row{Group: group(kv.Key, kv.Value), Value: kv.Value} })
	keyed := KeyBy(rows, func(r row) G { return r.Group }, withDefaultCodec[row](opts)...)
	state := stream.NewValueState[groupState[A]]("group")
	fn := stream.KeyedProcess[G, row, stream.KV[G, R]]{
		OnRecord: func(ctx stream.Context[G], r row, out stream.Emitter[stream.KV[G, R]]) error {
			st, had := state.Get(ctx)
			if !had {
				st.Acc = agg.Zero()
			}
			if st.Rows > 0 {
				out.Retract(stream.KV[G, R]{Key: r.Group, Value: agg.Result(st.Acc)})
			}
			if ctx.Kind() == stream.Retract {
				st.Acc, st.Rows = retracter.Retract(st.Acc, r.Value), st.Rows-1
			} else {
				st.Acc, st.Rows = agg.Add(st.Acc, r.Value), st.Rows+1
			}
			if st.Rows <= 0 {
				state.Clear(ctx) // the group's last row went: the group is deleted
				return nil
			}
			state.Set(ctx, st)
			out.Emit(stream.KV[G, R]{Key: r.Group, Value: agg.Result(st.Acc)})
			return nil
		},
	}
	return Table[G, R]{changes: process(keyed, fn, "aggregate-table", stageOnly(opts))}
}

// withDefaultCodec returns opts with a JSON codec for T first, so that a WithCodec in opts
// (applied after it) wins.
func withDefaultCodec[T any](opts []Option) []Option {
	return append([]Option{WithCodec(stream.JSON[T]())}, onlyCodecs(opts)...)
}

// onlyCodecs returns the codec options of opts: the ones a KeyBy takes.
func onlyCodecs(opts []Option) []Option {
	var out []Option
	for _, o := range opts {
		if _, ok := o.(codecOption); ok {
			out = append(out, o)
		}
	}
	return out
}

// stageOnly returns the options of opts for the keyed stage itself: all but codecs.
func stageOnly(opts []Option) []Option {
	var out []Option
	for _, o := range opts {
		if _, ok := o.(codecOption); !ok {
			out = append(out, o)
		}
	}
	return out
}
