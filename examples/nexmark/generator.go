package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unsafe"

	"github.com/eddyflow/eddy/stream"
)

// Person is a new user of the auction site (Nexmark's "person" table).
type Person struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	EmailAddress string `json:"emailAddress"`
	CreditCard   string `json:"creditCard"`
	City         string `json:"city"`
	State        string `json:"state"`
	DateTime     int64  `json:"dateTime"` // Unix ms
	Extra        string `json:"extra"`
}

// Auction is an item put up for auction (Nexmark's "auction" table).
type Auction struct {
	ID          int64  `json:"id"`
	ItemName    string `json:"itemName"`
	Description string `json:"description"`
	InitialBid  int64  `json:"initialBid"`
	Reserve     int64  `json:"reserve"`
	DateTime    int64  `json:"dateTime"` // Unix ms
	Expires     int64  `json:"expires"`  // Unix ms
	Seller      int64  `json:"seller"`
	Category    int64  `json:"category"`
	Extra       string `json:"extra"`
}

// Bid is a bid on an auction (Nexmark's "bid" table).
type Bid struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	Channel  string `json:"channel"`
	URL      string `json:"url"`
	DateTime int64  `json:"dateTime"` // Unix ms
	Extra    string `json:"extra"`
}

// Event is one generated event: exactly one of its fields is set. Its JSON form is
// {"person":{...}}, {"auction":{...}} or {"bid":{...}}.
type Event struct {
	Person  *Person  `json:"person,omitempty"`
	Auction *Auction `json:"auction,omitempty"`
	Bid     *Bid     `json:"bid,omitempty"`
}

// Time returns the event's dateTime (Unix ms).
func (e Event) Time() int64 {
	switch {
	case e.Bid != nil:
		return e.Bid.DateTime
	case e.Auction != nil:
		return e.Auction.DateTime
	case e.Person != nil:
		return e.Person.DateTime
	}
	return 0
}

// GeneratorConfig is the Nexmark generator's configuration. Defaults (DefaultGeneratorConfig)
// are those of the nexmark/nexmark Flink generator (NexmarkConfiguration).
type GeneratorConfig struct {
	// Seed makes the events: the same seed gives the same events, whatever the parallelism.
	Seed uint64
	// BaseTime is the dateTime of the first event, Unix ms. The Flink generator uses the wall
	// clock at start-up; a fixed time (Beam's 2015-07-15T00:00:00Z) makes runs repeatable.
	BaseTime int64
	// EventsPerSec is the event-time rate ("first-event.rate"): events are 1e6/EventsPerSec µs
	// apart in event time (default 10,000/s: 0.1 ms apart, 10 events per ms).
	EventsPerSec int
	// PersonProportion, AuctionProportion and BidProportion say how many of each kind of event
	// there are in every run of their sum (default 1:3:46 per 50 events).
	PersonProportion, AuctionProportion, BidProportion int
	// AvgPersonBytes, AvgAuctionBytes and AvgBidBytes are the average sizes of the events the
	// "extra" field pads them to (default 200, 500, 100).
	AvgPersonBytes, AvgAuctionBytes, AvgBidBytes int
	// HotAuctionRatio: a bid is for the current hot auction with probability 1 − 1/ratio
	// (default 2). HotSellersRatio and HotBiddersRatio likewise for sellers and bidders
	// (default 4).
	HotAuctionRatio, HotSellersRatio, HotBiddersRatio int
	// NumInFlightAuctions is how many recent auctions a non-hot bid picks from; it also sets
	// the average length of auctions (default 100).
	NumInFlightAuctions int
	// NumActivePeople is how many recent people a non-hot seller or bidder is picked from
	// (default 1000).
	NumActivePeople int
}

// DefaultGeneratorConfig returns the defaults of the Nexmark generator.
func DefaultGeneratorConfig() GeneratorConfig {
	return GeneratorConfig{
		Seed:                1,
		BaseTime:            1436918400000, // 2015-07-15T00:00:00Z
		EventsPerSec:        10_000,
		PersonProportion:    1,
		AuctionProportion:   3,
		BidProportion:       46,
		AvgPersonBytes:      200,
		AvgAuctionBytes:     500,
		AvgBidBytes:         100,
		HotAuctionRatio:     2,
		HotSellersRatio:     4,
		HotBiddersRatio:     4,
		NumInFlightAuctions: 100,
		NumActivePeople:     1000,
	}
}

func (c GeneratorConfig) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"EventsPerSec", c.EventsPerSec}, {"PersonProportion", c.PersonProportion},
		{"AuctionProportion", c.AuctionProportion}, {"BidProportion", c.BidProportion},
		{"HotAuctionRatio", c.HotAuctionRatio}, {"HotSellersRatio", c.HotSellersRatio},
		{"HotBiddersRatio", c.HotBiddersRatio}, {"NumInFlightAuctions", c.NumInFlightAuctions},
		{"NumActivePeople", c.NumActivePeople},
	} {
		if f.v < 1 {
			return fmt.Errorf("generator config: %s is %d; want at least 1", f.name, f.v)
		}
	}
	return nil
}

// Constants of the Nexmark generator.
const (
	firstPersonID   = 1000
	firstAuctionID  = 1000
	firstCategoryID = 10
	numCategories   = 5
	personIDLead    = 10 // people and auctions not yet created that may be referenced
	auctionIDLead   = 10
	hotRatio        = 100 // the hot auction/seller/bidder is the first of every 100
	numChannels     = 10_000
	extraPoolSize   = 1 << 20
	minStringLength = 3
)

var (
	usStates   = strings.Split("AZ,CA,ID,OR,WA,WY", ",")
	usCities   = strings.Split("Phoenix,Los Angeles,San Francisco,Boise,Portland,Bend,Redmond,Seattle,Kent,Cheyenne", ",")
	firstNames = strings.Split("Peter,Paul,Luke,John,Saul,Vicky,Kate,Julie,Sarah,Deiter,Walter", ",")
	lastNames  = strings.Split("Shultz,Abrams,Spencer,White,Bartels,Walton,Smith,Jones,Noris", ",")
	hotChannel = []string{"Google", "Facebook", "Baidu", "Apple"}
)

// Generator makes Nexmark events. Event n is a pure function of the configuration and n, so
// any number of goroutines can generate disjoint parts of one stream at once.
type Generator struct {
	cfg   GeneratorConfig
	total int64
	// delayUs is the event-time distance between events, µs.
	delayUs float64
	// extraPool is a random string the "extra" fields are cut from.
	extraPool string
	names     []string // first name, space, last name: every pair, by first then last
	hotURLs   []string
	channels  []string
	urls      []string
	cards     []string
}

// NewGenerator returns a generator for cfg.
func NewGenerator(cfg GeneratorConfig) (*Generator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:     cfg,
		total:   int64(cfg.PersonProportion + cfg.AuctionProportion + cfg.BidProportion),
		delayUs: 1e6 / float64(cfg.EventsPerSec),
	}
	r := newRand(cfg.Seed, -1)
	pool := make([]byte, extraPoolSize)
	for i := range pool {
		pool[i] = byte('a' + r.intn(26))
	}
	g.extraPool = string(pool)
	for range hotChannel {
		g.hotURLs = append(g.hotURLs, baseURL(&r))
	}
	for i := range numChannels {
		u := baseURL(&r)
		if r.intn(10) > 0 {
			id := int32(bits.Reverse32(uint32(i)))
			if id < 0 {
				id = -id // as Java's Math.abs: MinInt32 stays negative
			}
			u += "&channel_id=" + strconv.Itoa(int(id))
		}
		g.channels = append(g.channels, "channel-"+strconv.Itoa(i))
		g.urls = append(g.urls, u)
	}
	for i := range 10_000 {
		g.cards = append(g.cards, fmt.Sprintf("%04d", i))
	}
	for _, f := range firstNames {
		for _, l := range lastNames {
			g.names = append(g.names, f+" "+l)
		}
	}
	return g, nil
}

func baseURL(r *rng) string {
	return "https://www.nexmark.com/" + r.str(5, '_') + "/" + r.str(5, '_') + "/" + r.str(5, '_') + "/item.htm?query=1"
}

// timestamp returns the dateTime of event n.
func (g *Generator) timestamp(n int64) int64 {
	return g.cfg.BaseTime + int64(float64(n)*g.delayUs)/1000
}

// Event returns event n (0-based).
func (g *Generator) Event(n int64) Event {
	e, _ := g.event(n, nil)
	return e
}

// at is where event n is: its epoch (n / total) and its offset in the epoch (n % total),
// computed once per event.
type at struct{ n, epoch, off int64 }

// event returns event n and its dateTime; its bid, if it is one, is taken from slab when
// slab is not nil (one allocation for many bids).
func (g *Generator) event(n int64, slab *bidSlab) (Event, int64) {
	r := newRand(g.cfg.Seed, n)
	ts := g.timestamp(n)
	pos := at{n: n, epoch: n / g.total, off: n % g.total}
	switch {
	case pos.off < int64(g.cfg.PersonProportion):
		return Event{Person: g.person(pos, &r, ts)}, ts
	case pos.off < int64(g.cfg.PersonProportion+g.cfg.AuctionProportion):
		return Event{Auction: g.auction(pos, &r, ts)}, ts
	default:
		var b *Bid
		if slab != nil {
			b = slab.next()
		} else {
			b = new(Bid)
		}
		g.bid(pos, &r, ts, b)
		return Event{Bid: b}, ts
	}
}

// bidSlab hands out bids from arrays of bidSlabSize, one allocation each. A slab stays in
// memory while any of its bids does: fine for the queries, which keep few bids for long.
type bidSlab struct{ free []Bid }

const bidSlabSize = 256

func (s *bidSlab) next() *Bid {
	if len(s.free) == 0 {
		s.free = make([]Bid, bidSlabSize)
	}
	b := &s.free[0]
	s.free = s.free[1:]
	return b
}

// lastPerson returns the base-0 id of the last person created at or before event p.
func (g *Generator) lastPerson(p at) int64 {
	off := p.off
	if off >= int64(g.cfg.PersonProportion) {
		off = int64(g.cfg.PersonProportion) - 1
	}
	return p.epoch*int64(g.cfg.PersonProportion) + off
}

// lastAuction returns the base-0 id of the last auction created at or before event p.
func (g *Generator) lastAuction(p at) int64 {
	epoch, off := p.epoch, p.off
	pp, a := int64(g.cfg.PersonProportion), int64(g.cfg.AuctionProportion)
	switch {
	case off < pp:
		epoch--
		off = a - 1
	case off >= pp+a:
		off = a - 1
	default:
		off -= pp
	}
	return epoch*a + off
}

// randomPerson picks one of the active people, or one a little ahead of the last created.
func (g *Generator) randomPerson(p at, r *rng) int64 {
	people := g.lastPerson(p) + 1
	active := min(people, int64(g.cfg.NumActivePeople))
	return people - active + r.int63n(active+personIDLead)
}

// randomAuction picks one of the auctions likely still in flight, or one a little ahead.
func (g *Generator) randomAuction(p at, r *rng) int64 {
	last := g.lastAuction(p)
	first := max(last-int64(g.cfg.NumInFlightAuctions), 0)
	return first + r.int63n(last-first+1+auctionIDLead)
}

func (g *Generator) person(pos at, r *rng, ts int64) *Person {
	p := &Person{ID: g.lastPerson(pos) + firstPersonID, DateTime: ts}
	first := r.intn(len(firstNames))
	p.Name = g.names[first*len(lastNames)+r.intn(len(lastNames))]
	// The email and the credit card in one allocation.
	buf := make([]byte, 0, 6+1+4+4+4*4+3)
	buf = r.appendStr(buf, 7, ' ')
	buf = append(buf, '@')
	buf = r.appendStr(buf, 5, ' ')
	buf = append(buf, ".com"...)
	email := len(buf)
	for i := range 4 {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, g.cards[r.intn(len(g.cards))]...)
	}
	p.EmailAddress, p.CreditCard = bytesString(buf[:email]), bytesString(buf[email:])
	p.City = usCities[r.intn(len(usCities))]
	p.State = usStates[r.intn(len(usStates))]
	size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = g.extra(r, size, g.cfg.AvgPersonBytes)
	return p
}

func (g *Generator) auction(pos at, r *rng, ts int64) *Auction {
	a := &Auction{ID: g.lastAuction(pos) + firstAuctionID, DateTime: ts}
	if r.intn(g.cfg.HotSellersRatio) > 0 {
		a.Seller = g.lastPerson(pos) / hotRatio * hotRatio
	} else {
		a.Seller = g.randomPerson(pos, r)
	}
	a.Seller += firstPersonID
	a.Category = firstCategoryID + int64(r.intn(numCategories))
	a.InitialBid = r.price()
	a.Expires = ts + g.auctionLength(pos.n, r, ts)
	// The item name and the description in one allocation.
	buf := make([]byte, 0, 19+99)
	buf = r.appendStr(buf, 20, ' ')
	name := len(buf)
	buf = r.appendStr(buf, 100, ' ')
	a.ItemName, a.Description = bytesString(buf[:name]), bytesString(buf[name:])
	a.Reserve = a.InitialBid + r.price()
	size := 8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8
	a.Extra = g.extra(r, size, g.cfg.AvgAuctionBytes)
	return a
}

// auctionLength returns how long an auction lasts, ms: on average as long as it takes to
// create NumInFlightAuctions more auctions.
func (g *Generator) auctionLength(n int64, r *rng, ts int64) int64 {
	ahead := int64(g.cfg.NumInFlightAuctions) * g.total / int64(g.cfg.AuctionProportion)
	horizon := g.timestamp(n+ahead) - ts
	return 1 + r.int63n(max(horizon*2, 1))
}

func (g *Generator) bid(pos at, r *rng, ts int64, b *Bid) {
	b.DateTime = ts
	if r.intn(g.cfg.HotAuctionRatio) > 0 {
		b.Auction = g.lastAuction(pos) / hotRatio * hotRatio
	} else {
		b.Auction = g.randomAuction(pos, r)
	}
	b.Auction += firstAuctionID
	if r.intn(g.cfg.HotBiddersRatio) > 0 {
		// The second person of the batch, so that hot bidders and hot sellers differ.
		b.Bidder = g.lastPerson(pos)/hotRatio*hotRatio + 1
	} else {
		b.Bidder = g.randomPerson(pos, r)
	}
	b.Bidder += firstPersonID
	b.Price = r.price()
	if r.intn(2) > 0 {
		i := r.intn(len(hotChannel))
		b.Channel, b.URL = hotChannel[i], g.hotURLs[i]
	} else {
		i := r.intn(numChannels)
		b.Channel, b.URL = g.channels[i], g.urls[i]
	}
	b.Extra = g.extra(r, 8+8+8+8, g.cfg.AvgBidBytes)
}

// bytesString returns b as a string without copying it: b must never change afterwards.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// extra returns padding such that size + its length is avg on average (±20%, uniform).
func (g *Generator) extra(r *rng, size, avg int) string {
	if size > avg {
		return ""
	}
	avg -= size
	delta := int(math.Round(float64(avg) * 0.2))
	n := avg - delta
	if delta > 0 {
		n += r.intn(2 * delta)
	}
	off := r.intn(len(g.extraPool) - n)
	return g.extraPool[off : off+n]
}

// rng is SplitMix64 (the algorithm of Java's SplittableRandom), seeded per event, so that
// events can be generated independently of each other.
type rng struct{ s uint64 }

func newRand(seed uint64, n int64) rng {
	r := rng{s: seed*0xD1342543DE82EF95 + uint64(n)}
	r.s = r.next() // decorrelate neighbouring events
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// uint64n returns a uniform number in [0, n), n > 0 (Lemire's multiply-and-reject). The
// rare rejection is a call of its own, so that this inlines.
func (r *rng) uint64n(n uint64) uint64 {
	hi, lo := bits.Mul64(r.next(), n)
	if lo < n {
		hi = r.reject(n, hi, lo)
	}
	return hi
}

// reject draws again while lo falls in the biased part, and returns the high half.
//
//go:noinline
func (r *rng) reject(n, hi, lo uint64) uint64 {
	for thresh := -n % n; lo < thresh; {
		hi, lo = bits.Mul64(r.next(), n)
	}
	return hi
}

func (r *rng) intn(n int) int       { return int(r.uint64n(uint64(n))) }
func (r *rng) int63n(n int64) int64 { return int64(r.uint64n(uint64(n))) }
func (r *rng) float64() float64     { return float64(r.next()>>11) / (1 << 53) }
func (r *rng) price() int64         { return int64(math.Round(pow10(r.float64()*6) * 100)) }
func (r *rng) letter() byte         { return byte('a' + r.intn(26)) }

// str returns a random string of 3 to maxLen−1 letters, one in 13 of them replaced by
// special, with leading and trailing spaces trimmed.
func (r *rng) str(maxLen int, special byte) string {
	return string(r.appendStr(nil, maxLen, special))
}

// appendStr appends what str returns to dst.
func (r *rng) appendStr(dst []byte, maxLen int, special byte) []byte {
	n := minStringLength + r.intn(maxLen-minStringLength)
	start := len(dst)
	for range n {
		if r.intn(13) == 0 {
			dst = append(dst, special)
		} else {
			dst = append(dst, r.letter())
		}
	}
	trimmed := bytes.TrimSpace(dst[start:])
	return dst[:start+copy(dst[start:], trimmed)]
}

// ln10 is math.Log(10), as math.Pow computes it.
var ln10 = math.Log(10)

// pow10 returns math.Pow(10, y) for y in [0, 6], bit for bit, for less: the steps math.Pow
// takes for a base of 10 and such a y, with Log(10) computed once (TestPow10 checks it).
func pow10(y float64) float64 {
	switch y {
	case 0:
		return 1
	case 1:
		return 10
	case 0.5:
		return math.Sqrt(10)
	}
	yi, yf := math.Modf(y)
	a1, ae := 1.0, 0
	if yf != 0 {
		if yf > 0.5 {
			yf--
			yi++
		}
		a1 = math.Exp(yf * ln10)
	}
	// 10 = 0.625 · 2⁴: multiply in its successive squarings per bit of yi, as math.Pow.
	x1, xe := 0.625, 4
	for i := int64(yi); i != 0; i >>= 1 {
		if i&1 == 1 {
			a1 *= x1
			ae += xe
		}
		x1 *= x1
		xe <<= 1
		if x1 < .5 {
			x1 += x1
			xe--
		}
	}
	return math.Ldexp(a1, ae)
}

// source is the Nexmark event source. Split j of P generates events j, j+P, j+2P, ..., so
// that all splits move through event time together (the Flink generator instead gives each
// split its own id range on its own timeline, which makes results depend on parallelism).
type source struct {
	gen *Generator
	n   int64
}

func (s source) Splits(p int) ([]stream.Split[Event], error) {
	out := make([]stream.Split[Event], p)
	for j := range p {
		out[j] = &split{gen: s.gen, next: int64(j), step: int64(p), end: s.n}
	}
	return out, nil
}

type split struct {
	gen             *Generator
	next, step, end int64
	bids            bidSlab
}

func (s *split) Read(ctx context.Context, max int, out stream.Output[Event]) (int, error) {
	recs, err := s.Append(ctx, nil, max)
	for _, r := range recs {
		out.Emit(r)
	}
	return len(recs), err
}

func (s *split) Append(_ context.Context, dst []stream.Record[Event], max int) ([]stream.Record[Event], error) {
	for ; max > 0 && s.next < s.end; max-- {
		e, ts := s.gen.event(s.next, &s.bids)
		dst = append(dst, stream.Record[Event]{Value: e, Time: ts})
		s.next += s.step
	}
	if s.next >= s.end {
		return dst, io.EOF
	}
	return dst, nil
}

func (s *split) Close() error { return nil }

// offsetVersion is the first byte of a split's offset: then the index of its next event,
// its step and its end, each a big-endian int64.
const offsetVersion = 1

// Offset returns the split's position: it rewinds, so it can take part in checkpoints.
func (s *split) Offset() ([]byte, error) {
	b := make([]byte, 1, 25)
	b[0] = offsetVersion
	b = binary.BigEndian.AppendUint64(b, uint64(s.next))
	b = binary.BigEndian.AppendUint64(b, uint64(s.step))
	b = binary.BigEndian.AppendUint64(b, uint64(s.end))
	return b, nil
}

// Seek moves the split to an offset Offset returned, of the same split of the same run.
func (s *split) Seek(offset []byte) error {
	if len(offset) != 25 || offset[0] != offsetVersion {
		return fmt.Errorf("nexmark split: offset %x is not one of a nexmark split (version %d, 25 bytes)", offset, offsetVersion)
	}
	next := int64(binary.BigEndian.Uint64(offset[1:]))
	step := int64(binary.BigEndian.Uint64(offset[9:]))
	end := int64(binary.BigEndian.Uint64(offset[17:]))
	if step != s.step || end != s.end || next < s.next || (next-s.next)%s.step != 0 {
		return fmt.Errorf("nexmark split: offset at event %d (step %d, end %d) is not one of this split (first %d, step %d, end %d)",
			next, step, end, s.next, s.step, s.end)
	}
	s.next = next
	return nil
}
