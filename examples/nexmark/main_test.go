package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if eventsPath != "" {
			os.RemoveAll(filepath.Dir(eventsPath))
		}
		os.Exit(code)
	}))
}

// testEvents is how many events the query tests generate: 16 s of event time, so that
// every windowed query has several windows.
const testEvents = 160_000

var (
	eventsOnce sync.Once
	eventsPath string
	eventsErr  error
	events     []Event
)

// generated runs q2 once with -events-out and returns the events read back from that file:
// the references below compute from the file, not from the generator.
func generated(t *testing.T) ([]Event, string) {
	t.Helper()
	eventsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nexmark-test")
		if err != nil {
			eventsErr = err
			return
		}
		eventsPath = filepath.Join(dir, "events.jsonl")
		var stdout bytes.Buffer
		args := []string{"-query", "q2", "-events", fmt.Sprint(testEvents), "-parallelism", "2", "-events-out", eventsPath}
		if eventsErr = run(context.Background(), args, &stdout, io.Discard); eventsErr != nil {
			return
		}
		events, eventsErr = readJSONL[Event](eventsPath)
	})
	if eventsErr != nil {
		t.Fatal(eventsErr)
	}
	return events, eventsPath
}

func readJSONL[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// jsonLines encodes rows as the JSON-lines sink does (no HTML escaping).
func jsonLines[T any](rows []T) []string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		buf.Reset()
		if err := enc.Encode(r); err != nil {
			panic(err)
		}
		out = append(out, strings.TrimSuffix(buf.String(), "\n"))
	}
	return out
}

// sameMultiset reports the first differences between two multisets of lines.
func sameMultiset(t *testing.T, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, l := range want {
		count[l]++
	}
	for _, l := range got {
		count[l]--
	}
	var missing, extra []string
	for l, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, l)
		}
		for ; n < 0; n++ {
			extra = append(extra, l)
		}
	}
	if len(missing)+len(extra) == 0 {
		return
	}
	slices.Sort(missing)
	slices.Sort(extra)
	t.Errorf("%d results, want %d: %d missing, %d unexpected", len(got), len(want), len(missing), len(extra))
	for _, l := range missing[:min(len(missing), 5)] {
		t.Errorf("missing:    %.200s", l)
	}
	for _, l := range extra[:min(len(extra), 5)] {
		t.Errorf("unexpected: %.200s", l)
	}
}

// The references: each query written plainly over the whole list of events.

func bidsOf(es []Event) []*Bid {
	var bs []*Bid
	for _, e := range es {
		if e.Bid != nil {
			bs = append(bs, e.Bid)
		}
	}
	return bs
}

func refQ0(es []Event) []string {
	var rows []Q0Row
	for _, b := range bidsOf(es) {
		rows = append(rows, Q0Row{b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra})
	}
	return jsonLines(rows)
}

func refQ1(es []Event) []string {
	var rows []Q1Row
	for _, b := range bidsOf(es) {
		rows = append(rows, Q1Row{b.Auction, b.Bidder, Euro(b.Price * 908), b.DateTime, b.Extra})
	}
	return jsonLines(rows)
}

func refQ2(es []Event) []string {
	var rows []Q2Row
	for _, b := range bidsOf(es) {
		if b.Auction%123 == 0 {
			rows = append(rows, Q2Row{b.Auction, b.Price})
		}
	}
	return jsonLines(rows)
}

func refQ3(es []Event) []string {
	persons := map[int64]*Person{}
	for _, e := range es {
		if e.Person != nil {
			persons[e.Person.ID] = e.Person
		}
	}
	var rows []Q3Row
	for _, e := range es {
		a := e.Auction
		if a == nil || a.Category != 10 {
			continue
		}
		if p, ok := persons[a.Seller]; ok && (p.State == "OR" || p.State == "ID" || p.State == "CA") {
			rows = append(rows, Q3Row{p.Name, p.City, p.State, a.ID})
		}
	}
	return jsonLines(rows)
}

// refQ4 returns the final average per category, one line each.
func refQ4(es []Event) []string {
	auctions := map[int64]*Auction{}
	for _, e := range es {
		if e.Auction != nil {
			auctions[e.Auction.ID] = e.Auction
		}
	}
	final := map[int64]int64{}
	for _, b := range bidsOf(es) {
		a, ok := auctions[b.Auction]
		if !ok || b.DateTime < a.DateTime || b.DateTime > a.Expires {
			continue
		}
		if p, ok := final[a.ID]; !ok || b.Price > p {
			final[a.ID] = b.Price
		}
	}
	sum, n := map[int64]int64{}, map[int64]int64{}
	for id, p := range final {
		sum[auctions[id].Category] += p
		n[auctions[id].Category]++
	}
	var rows []Q4Row
	for c := range sum {
		rows = append(rows, Q4Row{c, sum[c] / n[c]})
	}
	return jsonLines(rows)
}

// lastPerID keeps the last q4 update of each category.
func lastPerID(t *testing.T, lines []string) []string {
	last := map[int64]string{}
	for _, l := range lines {
		var r Q4Row
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		last[r.ID] = l
	}
	var out []string
	for _, l := range last {
		out = append(out, l)
	}
	return out
}

func floorTo(t, size int64) int64 {
	if t >= 0 {
		return t / size * size
	}
	return -((-t + size - 1) / size * size)
}

func refQ5(es []Event) []string {
	size, slide := q5Size.Milliseconds(), q5Slide.Milliseconds()
	type key struct{ start, auction int64 }
	counts := map[key]int64{}
	for _, b := range bidsOf(es) {
		for s := floorTo(b.DateTime, slide); s > b.DateTime-size; s -= slide {
			counts[key{s, b.Auction}]++
		}
	}
	most := map[int64]int64{}
	for k, n := range counts {
		most[k.start] = max(most[k.start], n)
	}
	var rows []Q5Row
	for k, n := range counts {
		if n == most[k.start] {
			rows = append(rows, Q5Row{k.auction, n, k.start, k.start + size})
		}
	}
	return jsonLines(rows)
}

func refQ7(es []Event) []string {
	size := q7Size.Milliseconds()
	highest := map[int64]int64{} // window start → highest price in [start, start+size)
	for _, b := range bidsOf(es) {
		s := floorTo(b.DateTime, size)
		if p, ok := highest[s]; !ok || b.Price > p {
			highest[s] = b.Price
		}
	}
	var rows []Q7Row
	for _, b := range bidsOf(es) {
		// dateTime BETWEEN window_end - size AND window_end, both ends included.
		for start, p := range highest {
			if b.DateTime >= start && b.DateTime <= start+size && b.Price == p {
				rows = append(rows, Q7Row{b.Auction, b.Price, b.Bidder, b.DateTime, b.Extra})
			}
		}
	}
	return jsonLines(rows)
}

func refQ8(es []Event) []string {
	size := q8Size.Milliseconds()
	type key struct{ id, start int64 }
	sellers := map[key]bool{}
	for _, e := range es {
		if a := e.Auction; a != nil {
			sellers[key{a.Seller, floorTo(a.DateTime, size)}] = true
		}
	}
	var rows []Q8Row
	for _, e := range es {
		if p := e.Person; p != nil && sellers[key{p.ID, floorTo(p.DateTime, size)}] {
			rows = append(rows, Q8Row{p.ID, p.Name, floorTo(p.DateTime, size)})
		}
	}
	return jsonLines(rows)
}

func refQ11(es []Event) []string {
	gap := q11Gap.Milliseconds()
	times := map[int64][]int64{}
	for _, b := range bidsOf(es) {
		times[b.Bidder] = append(times[b.Bidder], b.DateTime)
	}
	var rows []Q11Row
	for bidder, ts := range times {
		slices.Sort(ts)
		cur := Q11Row{Bidder: bidder, BidCount: 1, StartTime: ts[0], EndTime: ts[0] + gap}
		for _, t := range ts[1:] {
			if t > cur.EndTime { // sessions that touch merge
				rows = append(rows, cur)
				cur = Q11Row{Bidder: bidder, StartTime: t}
			}
			cur.BidCount++
			cur.EndTime = t + gap
		}
		rows = append(rows, cur)
	}
	return jsonLines(rows)
}

var cases = []struct {
	query       string
	parallelism int
	ref         func([]Event) []string
	updates     bool // results are updates: compare the last one per id
}{
	{"q0", 2, refQ0, false},
	{"q1", 3, refQ1, false},
	{"q2", 1, refQ2, false},
	{"q3", 2, refQ3, false},
	{"q4", 3, refQ4, true},
	{"q5", 2, refQ5, false},
	{"q7", 3, refQ7, false},
	{"q8", 2, refQ8, false},
	{"q11", 4, refQ11, false},
}

// TestQueries runs every query through the engine over the generated events and compares
// its results, as multisets of JSON lines, with the reference's.
func TestQueries(t *testing.T) {
	testQueries(t, nil, nil)
}

// TestQueriesWithCheckpoints is TestQueries with a checkpoint every 50 ms, into a
// store the test then reads: the checkpoints change no result. A periodic checkpoint
// completes only once its barriers have passed every record in flight before them, which
// in a run this short may be only at its end; so each query must have saved its final
// checkpoint, and the queries together at least one periodic one.
func TestQueriesWithCheckpoints(t *testing.T) {
	var periodic atomic.Int64
	testQueries(t, func(t *testing.T) []string {
		return []string{"-checkpoint", "50ms", "-checkpoint-dir", t.TempDir()}
	}, func(t *testing.T, res Result, args []string) {
		periodic.Add(checkCheckpoints(t, res, args[len(args)-1]))
	})
	if periodic.Load() == 0 {
		t.Error("no query completed a periodic checkpoint")
	}
}

// testQueries runs each case with the arguments extra returns (nil: none), and check, if
// not nil, on its result line.
func testQueries(t *testing.T, extra func(t *testing.T) []string, check func(t *testing.T, res Result, args []string)) {
	es, _ := generated(t)
	if len(cases) != len(queries) {
		t.Fatalf("%d test cases for %d queries", len(cases), len(queries))
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.jsonl")
			var stdout bytes.Buffer
			args := []string{"-query", c.query, "-events", fmt.Sprint(testEvents), "-parallelism", fmt.Sprint(c.parallelism), "-out", out}
			var more []string
			if extra != nil {
				more = extra(t)
			}
			if err := run(context.Background(), append(args, more...), &stdout, io.Discard); err != nil {
				t.Fatal(err)
			}
			var res Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("stdout %q: %v", stdout.String(), err)
			}
			got := readLines(t, out)
			if res.Query != c.query || res.Events != testEvents || res.Results != int64(len(got)) || res.Seconds <= 0 {
				t.Errorf("stdout %s: want query %s, %d events, %d results", stdout.String(), c.query, testEvents, len(got))
			}
			if check != nil {
				check(t, res, more)
			}
			want := c.ref(es)
			if c.updates {
				got = lastPerID(t, got)
			}
			if len(want) == 0 {
				t.Fatal("the reference has no results: the test proves nothing")
			}
			sameMultiset(t, got, want)
		})
	}
}

// checkCheckpoints checks what a run with -checkpoint 50ms reported against its store in
// dir, and returns how many periodic checkpoints it completed. The final checkpoint must be
// in the store, and complete; a periodic one may fail only when the job ends while it is
// under way (the runtime then counts it failed).
func checkCheckpoints(t *testing.T, res Result, dir string) int64 {
	t.Helper()
	if res.Checkpoints < 1 || res.CheckpointsFailed > 1 || res.CheckpointBytes <= 0 || res.CheckpointInterval != 0.05 {
		t.Errorf("checkpoints: %+v; want the final one at least, at most one cut short", res)
	}
	store, err := persistence.OpenDirCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 || int64(ids[len(ids)-1]) != actor.FinalCheckpoint {
		t.Fatalf("the store holds checkpoints %v; want the final one (%d) last", ids, uint64(actor.FinalCheckpoint))
	}
	if _, err := store.Load(context.Background(), ids[len(ids)-1]); err != nil {
		t.Errorf("the final checkpoint: %v", err)
	}
	t.Logf("%d checkpoints (%d failed), %d bytes, stored: %v", res.Checkpoints, res.CheckpointsFailed, res.CheckpointBytes, ids)
	return res.Checkpoints - 1
}

// TestEdgeCases runs queries over hand-made events for the cases the generated events may
// not reach.
func TestEdgeCases(t *testing.T) {
	const base = 1436918400000
	bid := func(auction, price, at int64) Event {
		return Event{Bid: &Bid{Auction: auction, Bidder: 7, Price: price, Channel: "c", URL: "u", DateTime: base + at, Extra: "x"}}
	}
	auction := func(id, at, expires, category int64) Event {
		return Event{Auction: &Auction{ID: id, Seller: 1000, Category: category, DateTime: base + at, Expires: base + expires}}
	}
	person := func(id int64, state string, at int64) Event {
		return Event{Person: &Person{ID: id, Name: "p", City: "c", State: state, DateTime: base + at}}
	}
	for _, c := range []struct {
		name   string
		query  string
		events []Event
		ref    func([]Event) []string
	}{
		// The bid at exactly 10 s has window 0's highest price: the SQL's BETWEEN takes it
		// for window 0 too.
		{"q7 bid at a window's end", "q7", []Event{bid(1, 5, 0), bid(2, 9, 5000), bid(3, 9, 10000), bid(4, 3, 12000)}, refQ7},
		// Ties in price.
		{"q7 ties", "q7", []Event{bid(1, 9, 0), bid(2, 9, 5000), bid(3, 1, 9999)}, refQ7},
		// A bid before its auction (same ms), a bid after expires, an auction with no bid.
		{"q4 early and late bids", "q4", []Event{bid(1, 50, 100), auction(1, 100, 200, 10), bid(1, 40, 150), bid(1, 99, 201),
			auction(2, 300, 400, 10), bid(2, 10, 400), auction(3, 500, 600, 11)}, refQ4},
		// An auction before its seller, and a seller in a state not taken.
		{"q3 auction before its seller", "q3", []Event{auction(5, 0, 10, 10), person(1000, "CA", 1), auction(6, 2, 10, 10),
			person(1001, "WA", 3), {Auction: &Auction{ID: 7, Seller: 1001, Category: 10, DateTime: base + 4}}}, refQ3},
		// Sessions 10 s apart touch, and merge.
		{"q11 touching sessions", "q11", []Event{bid(1, 1, 0), bid(1, 1, 10000), bid(1, 1, 20001)}, refQ11},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, _ := queryNamed(c.query)
			g := graph.New("test")
			out := &output{path: filepath.Join(t.TempDir(), "out.jsonl")}
			if err := addQuery(g, stream.Slice(c.events), q, out); err != nil {
				t.Fatal(err)
			}
			job, err := g.Build(graph.Parallelism(1))
			if err != nil {
				t.Fatal(err)
			}
			if err := job.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := readLines(t, out.path)
			if c.query == "q4" {
				got = lastPerID(t, got)
			}
			want := c.ref(c.events)
			sameMultiset(t, got, want)
			t.Logf("%d results: %q", len(got), got)
		})
	}
}

// TestGeneratorProportions checks the 1:3:46 mix in every run of 50 events, and that ids
// and timestamps advance as Nexmark's do.
func TestGeneratorProportions(t *testing.T) {
	gen, err := NewGenerator(DefaultGeneratorConfig())
	if err != nil {
		t.Fatal(err)
	}
	const n = 50 * 2000
	var persons, auctions, bids int
	var nextPerson, nextAuction int64 = firstPersonID, firstAuctionID
	var extra [3]int
	for i := range int64(n) {
		e := gen.Event(i)
		if want := DefaultGeneratorConfig().BaseTime + i/10; e.Time() != want {
			t.Fatalf("event %d at %d, want %d", i, e.Time(), want)
		}
		switch {
		case e.Person != nil:
			persons++
			if e.Person.ID != nextPerson {
				t.Fatalf("event %d: person %d, want %d", i, e.Person.ID, nextPerson)
			}
			nextPerson++
			extra[0] += len(e.Person.Extra)
		case e.Auction != nil:
			auctions++
			a := e.Auction
			if a.ID != nextAuction {
				t.Fatalf("event %d: auction %d, want %d", i, a.ID, nextAuction)
			}
			nextAuction++
			if a.Category < 10 || a.Category >= 10+numCategories || a.Expires <= a.DateTime || a.Reserve <= a.InitialBid || a.Seller >= nextPerson+personIDLead {
				t.Fatalf("event %d: bad auction %+v", i, a)
			}
			extra[1] += len(a.Extra)
		default:
			bids++
			b := e.Bid
			if b.Auction >= nextAuction+auctionIDLead || b.Bidder >= nextPerson+personIDLead || b.Price < 100 || b.Price > 100_000_000 {
				t.Fatalf("event %d: bad bid %+v", i, b)
			}
			extra[2] += len(b.Extra)
		}
		if (i+1)%50 == 0 && (persons != int(i+1)/50 || auctions != 3*int(i+1)/50 || bids != 46*int(i+1)/50) {
			t.Fatalf("after %d events: %d persons, %d auctions, %d bids; want 1:3:46", i+1, persons, auctions, bids)
		}
	}
	// Bids pad to 100 bytes on average: 32 bytes of numbers, 68 of extra (±20%).
	if avg := float64(extra[2]) / float64(bids); avg < 66 || avg > 70 {
		t.Errorf("bid extra is %.1f bytes on average, want about 68", avg)
	}
}

// TestGeneratorDeterministic checks that a seed makes the same events, and another seed
// others.
func TestGeneratorDeterministic(t *testing.T) {
	encode := func(seed uint64) []string {
		cfg := DefaultGeneratorConfig()
		cfg.Seed = seed
		gen, err := NewGenerator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var es []Event
		for i := range int64(1000) {
			es = append(es, gen.Event(i))
		}
		return jsonLines(es)
	}
	a, b, c := encode(7), encode(7), encode(8)
	if !slices.Equal(a, b) {
		t.Error("seed 7 made different events twice")
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 7 and 8 made %d equal events of %d", same, len(a))
	}
	// The events file is the generator's output, in order.
	es, _ := generated(t)
	gen, _ := NewGenerator(DefaultGeneratorConfig())
	for _, i := range []int{0, 1, 49, 50, 12345, testEvents - 1} {
		if got, want := jsonLines(es[i : i+1])[0], jsonLines([]Event{gen.Event(int64(i))})[0]; got != want {
			t.Errorf("events file line %d is %.100s, want %.100s", i+1, got, want)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-query", "q6"},
		{"-parallelism", "0"},
		{"-events", "-1"},
		{"-checkpoint", "-1s"},
		{"-checkpoint", "soon"},
		{"-checkpoint-dir", "/tmp"},
		{"-key-groups", "-1"},
		{"extra"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestSplitOffsets checks that a split rewinds to the offsets it gave, and refuses offsets
// that are not its own.
func TestSplitOffsets(t *testing.T) {
	gen, err := NewGenerator(DefaultGeneratorConfig())
	if err != nil {
		t.Fatal(err)
	}
	src := source{gen: gen, n: 1000}
	splits := func(p int) []stream.Split[Event] {
		s, err := src.Splits(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Read 300 events of split 1 of 3, note the offset, read on; a new split 1 seeks there
	// and reads the same events.
	a := splits(3)[1].(*split)
	first, _ := a.Append(context.Background(), nil, 100)
	off, err := a.Offset()
	if err != nil {
		t.Fatal(err)
	}
	rest, err := a.Append(context.Background(), nil, 1000)
	if err != io.EOF || len(first)+len(rest) != 333 {
		t.Fatalf("split 1 of 3: %d + %d events (%v), want 333 and EOF", len(first), len(rest), err)
	}
	b := splits(3)[1].(*split)
	if err := b.Seek(off); err != nil {
		t.Fatal(err)
	}
	again, _ := b.Append(context.Background(), nil, 1000)
	if got, want := jsonLines(values(again)), jsonLines(values(rest)); !slices.Equal(got, want) {
		t.Errorf("after Seek: %d events, want the %d read after Offset", len(got), len(want))
	}

	for _, tc := range []struct {
		name   string
		split  *split
		offset []byte
	}{
		{"empty", splits(3)[1].(*split), nil},
		{"short", splits(3)[1].(*split), off[:24]},
		{"other version", splits(3)[1].(*split), append([]byte{2}, off[1:]...)},
		{"other split", splits(3)[0].(*split), off},
		{"other parallelism", splits(2)[1].(*split), off},
		{"other event count", splits(3)[1].(*split), func() []byte {
			o, _ := (&split{next: 101, step: 3, end: 2000}).Offset()
			return o
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.split.Seek(tc.offset); err == nil {
				t.Errorf("Seek(%x): no error", tc.offset)
			}
		})
	}
}

func values(recs []stream.Record[Event]) []Event {
	out := make([]Event, len(recs))
	for i, r := range recs {
		out[i] = r.Value
	}
	return out
}

// TestPow10 checks pow10 against math.Pow bit for bit: at the ends and the special cases
// of its range, around every integer in it, and at the prices of many events.
func TestPow10(t *testing.T) {
	ys := []float64{0, 0.5, 1, 1.5, 2, 3, 4, 5, 5.5, 6, math.Nextafter(6, 0), math.Nextafter(0, 1)}
	for i := range 7 {
		y := float64(i)
		ys = append(ys, math.Nextafter(y, -1), math.Nextafter(y, 7), y+0.5, math.Nextafter(y+0.5, 7), math.Nextafter(y+0.5, -1))
	}
	r := newRand(1, 0)
	for range 500_000 {
		ys = append(ys, r.float64()*6)
	}
	for _, y := range ys {
		if y < 0 || y > 6 {
			continue
		}
		if got, want := pow10(y), math.Pow(10, y); got != want {
			t.Fatalf("pow10(%v) = %v, math.Pow(10, %v) = %v", y, got, y, want)
		}
	}
}

// BenchmarkGenerator measures the generator alone, as a split makes events: per event.
func BenchmarkGenerator(b *testing.B) {
	gen, err := NewGenerator(DefaultGeneratorConfig())
	if err != nil {
		b.Fatal(err)
	}
	sp := &split{gen: gen, step: 1, end: math.MaxInt64}
	buf := make([]stream.Record[Event], 0, genBatch)
	b.ReportAllocs()
	for b.Loop() {
		if len(buf) == cap(buf) {
			buf = buf[:0]
		}
		buf, _ = sp.Append(context.Background(), buf, 1)
	}
}
