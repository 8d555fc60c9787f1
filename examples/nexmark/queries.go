package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// Window sizes of the queries, as in the Nexmark SQL.
const (
	q5Size      = 10 * time.Second
	q5Slide     = 2 * time.Second
	q7Size      = 10 * time.Second
	q8Size      = 10 * time.Second
	q11Gap      = 10 * time.Second
	q4Retention = 10 * time.Second // how long q4 remembers a closed auction, in event time
)

// query is one Nexmark query: build adds its stages after the stream of events (stamped with
// their dateTime, with watermarks) and sends its results to out.
type query struct {
	name  string
	about string
	build func(events graph.Stream[Event], out *output)
}

var queries = []query{
	{"q0", "pass-through of bids", q0},
	{"q1", "currency conversion: price in euro", q1},
	{"q2", "selection: bids on auctions whose id is a multiple of 123", q2},
	{"q3", "local item suggestion: sellers in OR, ID or CA of category-10 auctions", q3},
	{"q4", "average closing price per category", q4},
	{"q5", "hot items: the auctions with the most bids per 10 s window, every 2 s", q5},
	{"q7", "highest bid per 10 s window", q7},
	{"q8", "monitor new users: people who opened an auction in their first 10 s window", q8},
	{"q11", "user sessions: bids per bidder session (gap 10 s)", q11},
}

func queryNamed(name string) (query, bool) {
	for _, q := range queries {
		if q.name == name {
			return q, true
		}
	}
	return query{}, false
}

func queryNames() string {
	var names []string
	for _, q := range queries {
		names = append(names, q.name)
	}
	return strings.Join(names, ", ")
}

// output is where a query's results go: a JSON-lines file, or nowhere (Flink's blackhole
// connector); either way they are counted.
type output struct {
	path string
	n    atomic.Int64
	err  error
}

// to ends s in the query's result sink.
func to[T any](s graph.Stream[T], out *output) {
	sink := &countSink[T]{n: &out.n}
	if out.path != "" {
		sink.inner, out.err = stream.JSONLFileSink[T](out.path)
	}
	s.To(sink, graph.Name("results"))
}

// countSink counts records and hands them to inner, if any. Batches come from many actors
// at once; inner (a JSONL sink) is safe for that.
type countSink[T any] struct {
	inner stream.Sink[T]
	n     *atomic.Int64
}

func (s *countSink[T]) WriteBatch(recs []stream.Record[T]) error {
	s.n.Add(int64(len(recs)))
	if s.inner == nil {
		return nil
	}
	return s.inner.WriteBatch(recs)
}

func (s *countSink[T]) Close() error {
	if s.inner == nil {
		return nil
	}
	return s.inner.Close()
}

func bids(events graph.Stream[Event]) graph.Stream[*Bid] {
	return graph.FlatMap(events, func(e Event, emit func(*Bid)) {
		if e.Bid != nil {
			emit(e.Bid)
		}
	}, graph.Name("bids"))
}

// Q0Row is a result of q0.
type Q0Row struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	DateTime int64  `json:"dateTime"`
	Extra    string `json:"extra"`
}

func q0(events graph.Stream[Event], out *output) {
	to(graph.Map(bids(events), func(b *Bid) Q0Row {
		return Q0Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra}
	}), out)
}

// Euro is an amount in thousandths, written in JSON as a decimal number with three digits
// after the point: the DECIMAL(23, 3) of "0.908 * price", exact.
type Euro int64

// MarshalJSON writes e as a decimal number.
func (e Euro) MarshalJSON() ([]byte, error) {
	sign := ""
	if e < 0 {
		sign, e = "-", -e
	}
	return fmt.Appendf(nil, "%s%d.%03d", sign, e/1000, e%1000), nil
}

// Q1Row is a result of q1.
type Q1Row struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    Euro   `json:"price"`
	DateTime int64  `json:"dateTime"`
	Extra    string `json:"extra"`
}

func q1(events graph.Stream[Event], out *output) {
	to(graph.Map(bids(events), func(b *Bid) Q1Row {
		return Q1Row{Auction: b.Auction, Bidder: b.Bidder, Price: Euro(908 * b.Price), DateTime: b.DateTime, Extra: b.Extra}
	}), out)
}

// Q2Row is a result of q2.
type Q2Row struct {
	Auction int64 `json:"auction"`
	Price   int64 `json:"price"`
}

func q2(events graph.Stream[Event], out *output) {
	sel := bids(events).Filter(func(b *Bid) bool { return b.Auction%123 == 0 })
	to(graph.Map(sel, func(b *Bid) Q2Row { return Q2Row{Auction: b.Auction, Price: b.Price} }), out)
}

// Q3Row is a result of q3.
type Q3Row struct {
	Name  string `json:"name"`
	City  string `json:"city"`
	State string `json:"state"`
	ID    int64  `json:"id"`
}

// q3Seller is what q3 keeps of a person: all of them, as the SQL's join keeps its inputs.
// Short JSON names, and nothing but {} for a person not in OR, ID or CA: checkpoints write
// every person.
type q3Seller struct {
	Name  string `json:"n,omitempty"`
	City  string `json:"c,omitempty"`
	State string `json:"s,omitempty"`
	Local bool   `json:"l,omitempty"` // in OR, ID or CA
}

var (
	q3Person = stream.NewValueState[q3Seller]("person")
	// q3Waiting holds the auctions whose seller has not come yet (an auction may name one of
	// the next few people to be created).
	q3Waiting = stream.NewListState[int64]("waiting")
)

// q3 is the SQL's inner join of auction (category 10) and person (state OR, ID or CA) on
// seller = id, as a keyed process over both: whichever side comes first waits for the other.
func q3(events graph.Stream[Event], out *output) {
	in := events.Filter(func(e Event) bool {
		return e.Person != nil || e.Auction != nil && e.Auction.Category == 10
	}, graph.Name("persons-and-category-10"))
	bySeller := graph.KeyBy(in, func(e Event) int64 {
		if e.Person != nil {
			return e.Person.ID
		}
		return e.Auction.Seller
	}, graph.WithCodec(stream.JSON[Event]()))
	res := graph.Process(bySeller, stream.KeyedProcess[int64, Event, Q3Row]{
		OnRecord: func(ctx stream.Context[int64], e Event, emit stream.Emitter[Q3Row]) error {
			if p := e.Person; p != nil {
				s := q3Seller{Local: p.State == "OR" || p.State == "ID" || p.State == "CA"}
				if s.Local {
					s.Name, s.City, s.State = p.Name, p.City, p.State
				}
				q3Person.Set(ctx, s)
				if s.Local {
					for _, id := range q3Waiting.Items(ctx) {
						emit.Emit(Q3Row{Name: s.Name, City: s.City, State: s.State, ID: id})
					}
				}
				q3Waiting.Clear(ctx)
				return nil
			}
			s, ok := q3Person.Get(ctx)
			switch {
			case !ok:
				q3Waiting.Append(ctx, e.Auction.ID)
			case s.Local:
				emit.Emit(Q3Row{Name: s.Name, City: s.City, State: s.State, ID: e.Auction.ID})
			}
			return nil
		},
	}, graph.Name("join"))
	to(res, out)
}

// Q4Row is a result of q4: the average closing price of the auctions of category id so far.
// Each closing auction updates its category's average; the last row of an id is its final
// value.
type Q4Row struct {
	ID    int64 `json:"id"`
	Final int64 `json:"final"`
}

// q4Open is an open auction as q4 keeps it (short JSON names: checkpoints write them).
type q4Open struct {
	DateTime int64 `json:"t"`
	Expires  int64 `json:"e"`
	Category int64 `json:"c"`
}

// q4Bid is a bid that came before its auction.
type q4Bid struct {
	DateTime int64 `json:"t"`
	Price    int64 `json:"p"`
}

// q4Closing is the closing price of one auction.
type q4Closing struct {
	Category, Price int64
}

var (
	q4Auction = stream.NewValueState[q4Open]("auction")
	q4Best    = stream.NewValueState[int64]("best")
	q4Early   = stream.NewListState[q4Bid]("early")
	// q4Closed marks an auction that has closed, until the event time it holds, so that the
	// bids that still come for it are dropped at once.
	q4Closed = stream.NewValueState[int64]("closed")
)

// q4 computes each auction's closing price (its highest bid with dateTime in [auction
// dateTime, expires]) once the watermark passes expires, then the running average of the
// closing prices per category.
func q4(events graph.Stream[Event], out *output) {
	in := events.Filter(func(e Event) bool { return e.Person == nil }, graph.Name("auctions-and-bids"))
	byAuction := graph.KeyBy(in, func(e Event) int64 {
		if e.Auction != nil {
			return e.Auction.ID
		}
		return e.Bid.Auction
	}, graph.WithCodec(stream.JSON[Event]()))
	closing := graph.Process(byAuction, stream.KeyedProcess[int64, Event, q4Closing]{
		OnRecord: func(ctx stream.Context[int64], e Event, _ stream.Emitter[q4Closing]) error {
			if a := e.Auction; a != nil {
				open := q4Open{DateTime: a.DateTime, Expires: a.Expires, Category: a.Category}
				q4Auction.Set(ctx, open)
				for _, b := range q4Early.Items(ctx) {
					q4Raise(ctx, open, b.DateTime, b.Price)
				}
				q4Early.Clear(ctx)
				ctx.RegisterEventTimer(a.Expires + 1) // every bid at or before expires is in
				return nil
			}
			b := e.Bid
			if open, ok := q4Auction.Get(ctx); ok {
				q4Raise(ctx, open, b.DateTime, b.Price)
				return nil
			}
			if _, closed := q4Closed.Get(ctx); closed {
				return nil
			}
			// Its auction may still come, with a dateTime at or before the bid's. One timer
			// per auction prunes its early bids (not one per bid: fewer timers to keep and
			// to checkpoint); it fires once the watermark has passed the first of them.
			if len(q4Early.Items(ctx)) == 0 {
				ctx.RegisterEventTimer(b.DateTime + 1)
			}
			q4Early.Append(ctx, q4Bid{DateTime: b.DateTime, Price: b.Price})
			return nil
		},
		OnEventTimer: func(ctx stream.Context[int64], ts int64, emit stream.Emitter[q4Closing]) error {
			if open, ok := q4Auction.Get(ctx); ok && ts > open.Expires {
				if best, ok := q4Best.Get(ctx); ok {
					emit.Emit(q4Closing{Category: open.Category, Price: best})
				}
				q4Auction.Clear(ctx)
				q4Best.Clear(ctx)
				until := ts + q4Retention.Milliseconds()
				q4Closed.Set(ctx, until)
				ctx.RegisterEventTimer(until)
			} else if until, ok := q4Closed.Get(ctx); ok && ts >= until {
				q4Closed.Clear(ctx)
			}
			// Early bids the watermark has passed can no longer meet their auction: one that
			// comes now has a later dateTime. The rest wait for the next timer, after the
			// first of them.
			early := q4Early.Items(ctx)
			if len(early) == 0 {
				return nil
			}
			keep := slices.DeleteFunc(slices.Clone(early), func(b q4Bid) bool { return b.DateTime < ctx.Watermark() })
			q4Early.Clear(ctx)
			for _, b := range keep {
				q4Early.Append(ctx, b)
			}
			if len(keep) > 0 {
				ctx.RegisterEventTimer(slices.MinFunc(keep, func(a, b q4Bid) int { return cmp.Compare(a.DateTime, b.DateTime) }).DateTime + 1)
			}
			return nil
		},
	}, graph.Name("closing-price"))
	byCategory := graph.KeyBy(closing, func(c q4Closing) int64 { return c.Category }, graph.WithCodec(stream.JSON[q4Closing]()))
	avg := graph.Aggregate(byCategory, average{}, graph.Name("average"))
	to(graph.Map(avg, func(kv stream.KV[int64, int64]) Q4Row { return Q4Row{ID: kv.Key, Final: kv.Value} }), out)
}

// q4Raise takes a bid into an open auction's highest price, if it is in the auction's time.
func q4Raise(ctx stream.Context[int64], open q4Open, at, price int64) {
	if at < open.DateTime || at > open.Expires {
		return
	}
	if best, ok := q4Best.Get(ctx); !ok || price > best {
		q4Best.Set(ctx, price)
	}
}

// average is SQL's AVG of BIGINT closing prices: a BIGINT, the sum divided by the count.
type average struct{}

type sumCount struct{ Sum, Count int64 }

func (average) Zero() sumCount                       { return sumCount{} }
func (average) Add(a sumCount, c q4Closing) sumCount { return sumCount{a.Sum + c.Price, a.Count + 1} }
func (average) Result(a sumCount) int64 {
	if a.Count == 0 {
		return 0
	}
	return a.Sum / a.Count
}

// Q5Row is a result of q5: an auction with the most bids (num) in the window [starttime,
// endtime). The SQL's result has auction and num only; the window is added so that rows can
// be told apart.
type Q5Row struct {
	Auction   int64 `json:"auction"`
	Num       int64 `json:"num"`
	StartTime int64 `json:"starttime"`
	EndTime   int64 `json:"endtime"`
}

type auctionCount = stream.WindowResult[int64, int64]

// most keeps the largest count and every auction that has it.
type most struct {
	Num      int64
	Auctions []int64
}

type mostAgg struct{}

func (mostAgg) Zero() most { return most{} }
func (mostAgg) Add(m most, c auctionCount) most {
	switch {
	case c.Value > m.Num:
		return most{Num: c.Value, Auctions: []int64{c.Key}}
	case c.Value == m.Num:
		m.Auctions = append(m.Auctions, c.Key)
	}
	return m
}
func (mostAgg) Result(m most) most { return m }

// q5 counts bids per auction in hopping windows, then, keyed by window, keeps the auctions
// with the largest count. A count result carries its window's end − 1 as its timestamp, so
// a tumbling window of the slide over the counts holds exactly one hopping window's counts,
// and fires when the watermark has passed that window's end everywhere.
func q5(events graph.Stream[Event], out *output) {
	byAuction := graph.KeyBy(bids(events), func(b *Bid) int64 { return b.Auction }, graph.WithCodec(stream.JSON[*Bid]()))
	counts := graph.Window(byAuction, stream.Hopping(q5Size, q5Slide), agg.Count[*Bid](), graph.Name("bids-per-auction"))
	byWindow := graph.KeyBy(counts, func(c auctionCount) int64 { return c.Start }, graph.WithCodec(stream.JSON[auctionCount]()))
	hottest := graph.Window(byWindow, stream.Tumbling(q5Slide), mostAgg{}, graph.Name("hottest"))
	to(graph.FlatMap(hottest, func(r stream.WindowResult[int64, most], emit func(Q5Row)) {
		for _, a := range r.Value.Auctions {
			emit(Q5Row{Auction: a, Num: r.Value.Num, StartTime: r.Key, EndTime: r.Key + q5Size.Milliseconds()})
		}
	}), out)
}

// Q7Row is a result of q7: a bid with the highest price of its window.
type Q7Row struct {
	Auction  int64  `json:"auction"`
	Price    int64  `json:"price"`
	Bidder   int64  `json:"bidder"`
	DateTime int64  `json:"dateTime"`
	Extra    string `json:"extra"`
}

// q7Bid is a bid, or (Edge) a copy of a bid at exactly a window's end for the window before:
// the SQL's "dateTime BETWEEN window_end - 10 s AND window_end" takes such a bid when its
// price is that window's highest, though the highest is over [start, end) only.
type q7Bid struct {
	Bid  *Bid
	Edge bool
}

// highest keeps the highest price, the bids that have it, and the edge bids.
type highest struct {
	Set   bool
	Price int64
	Top   []*Bid
	Edge  []*Bid
}

func (h highest) raise(b *Bid) highest {
	switch {
	case !h.Set || b.Price > h.Price:
		h.Set, h.Price, h.Top = true, b.Price, []*Bid{b}
	case b.Price == h.Price:
		h.Top = append(h.Top, b)
	}
	return h
}

type highestAgg struct{}

func (highestAgg) Zero() highest { return highest{} }
func (highestAgg) Add(h highest, b q7Bid) highest {
	if b.Edge {
		h.Edge = append(h.Edge, b.Bid)
		return h
	}
	return h.raise(b.Bid)
}
func (highestAgg) Result(h highest) highest { return h }

// partialHighest is the highest of one part of a window's bids.
type partialHighest = stream.WindowResult[int64, highest]

type mergeHighestAgg struct{}

func (mergeHighestAgg) Zero() highest { return highest{} }
func (mergeHighestAgg) Add(h highest, p partialHighest) highest {
	for _, b := range p.Value.Top {
		h = h.raise(b)
	}
	h.Edge = append(h.Edge, p.Value.Edge...)
	return h
}
func (mergeHighestAgg) Result(h highest) highest { return h }

// q7 finds the highest price per tumbling window in two steps (as Flink's local-global
// aggregation): per part of the bids and window, then per window over those partial results.
func q7(events graph.Stream[Event], out *output) {
	size := q7Size.Milliseconds()
	in := graph.FlatMap(events, func(e Event, emit func(q7Bid)) {
		if e.Bid == nil {
			return
		}
		emit(q7Bid{Bid: e.Bid})
		if e.Bid.DateTime%size == 0 {
			emit(q7Bid{Bid: e.Bid, Edge: true})
		}
	}, graph.Name("bids-and-edges"))
	in = graph.Timestamps(in, func(b q7Bid) int64 {
		if b.Edge {
			return b.Bid.DateTime - 1
		}
		return b.Bid.DateTime
	}, stream.BoundedOutOfOrder[q7Bid](watermarkDelay))
	// The first step is keyed by price % 128, not by auction: any key gives the same result,
	// and the hot auction takes half the bids, which would leave one key group with half
	// the work.
	spread := graph.KeyBy(in, func(b q7Bid) int64 { return b.Bid.Price % 128 }, graph.WithCodec(stream.JSON[q7Bid]()))
	partial := graph.Window(spread, stream.Tumbling(q7Size), highestAgg{}, graph.Name("highest-per-part"))
	byWindow := graph.KeyBy(partial, func(p partialHighest) int64 { return p.Start }, graph.WithCodec(stream.JSON[partialHighest]()))
	top := graph.Window(byWindow, stream.Tumbling(q7Size), mergeHighestAgg{}, graph.Name("highest"))
	to(graph.FlatMap(top, func(r stream.WindowResult[int64, highest], emit func(Q7Row)) {
		h := r.Value
		if !h.Set {
			return // only edge bids: the window had no bid of its own
		}
		row := func(b *Bid) Q7Row {
			return Q7Row{Auction: b.Auction, Price: b.Price, Bidder: b.Bidder, DateTime: b.DateTime, Extra: b.Extra}
		}
		for _, b := range h.Top {
			emit(row(b))
		}
		for _, b := range h.Edge {
			if b.Price == h.Price {
				emit(row(b))
			}
		}
	}), out)
}

// Q8Row is a result of q8: a person who opened an auction in the window they were created in.
type Q8Row struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	StartTime int64  `json:"starttime"`
}

func q8(events graph.Stream[Event], out *output) {
	persons := graph.FlatMap(events, func(e Event, emit func(*Person)) {
		if e.Person != nil {
			emit(e.Person)
		}
	}, graph.Name("persons"))
	auctions := graph.FlatMap(events, func(e Event, emit func(*Auction)) {
		if e.Auction != nil {
			emit(e.Auction)
		}
	}, graph.Name("auctions"))
	res := graph.WindowJoin(
		graph.KeyBy(persons, func(p *Person) int64 { return p.ID }, graph.WithCodec(stream.JSON[*Person]())),
		graph.KeyBy(auctions, func(a *Auction) int64 { return a.Seller }, graph.WithCodec(stream.JSON[*Auction]())),
		stream.Tumbling(q8Size),
		func(id int64, w stream.TimeWindow, ps []*Person, as []*Auction, emit func(Q8Row)) {
			if len(as) == 0 {
				return
			}
			// GROUP BY id, name, window: one row per distinct name (ids are unique).
			var names []string
			for _, p := range ps {
				if !slices.Contains(names, p.Name) {
					names = append(names, p.Name)
					emit(Q8Row{ID: id, Name: p.Name, StartTime: w.Start})
				}
			}
		}, graph.Name("join"))
	to(res, out)
}

// Q11Row is a result of q11: one session of a bidder.
type Q11Row struct {
	Bidder    int64 `json:"bidder"`
	BidCount  int64 `json:"bid_count"`
	StartTime int64 `json:"starttime"`
	EndTime   int64 `json:"endtime"`
}

func q11(events graph.Stream[Event], out *output) {
	byBidder := graph.KeyBy(bids(events), func(b *Bid) int64 { return b.Bidder }, graph.WithCodec(stream.JSON[*Bid]()))
	sessions := graph.Window(byBidder, stream.Session(q11Gap), agg.Count[*Bid](), graph.Name("sessions"))
	to(graph.Map(sessions, func(r stream.WindowResult[int64, int64]) Q11Row {
		return Q11Row{Bidder: r.Key, BidCount: r.Value, StartTime: r.Start, EndTime: r.End}
	}), out)
}
