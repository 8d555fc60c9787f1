package graph

import (
	"context"
	"fmt"
	"reflect"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

// Graph is a dataflow graph under construction. Its methods and the functions of this
// package record stages; mistakes are collected and returned by Build.
type Graph struct {
	name   string
	stages []*stage
	errs   []error
	// checks run at Build, once the whole graph is known (codecs can be given late).
	checks      []func() error
	sinkClosers []sinkCloser
	// twoPhase holds the Recover of every two-phase sink, called before a job runs.
	// owns is nil outside a cluster, where every instance runs here.
	twoPhase []func(lastComplete int64, owns func(uid int) bool) error
	// planning, set by Plan, makes Build stop at the plan and describe it here.
	planning *Description
}

// New returns an empty graph; name is the job's name, the first part of every identity.
func New(name string) *Graph { return &Graph{name: name} }

// Name returns the graph's name.
func (g *Graph) Name() string { return g.name }

func (g *Graph) errorf(format string, args ...any) {
	g.errs = append(g.errs, fmt.Errorf(format, args...))
}

// stage is one logical stage, type-erased; its typed parts live in closures.
type stage struct {
	g        *Graph
	id       int
	name     string
	kind     string
	typ      string
	inputs   []*stage
	links    []link
	root     bool // starts a vertex: a source, a keyed stage or a rebalance
	source   bool
	keyed    bool
	sink     bool
	codec    any
	keyDesc  string
	parent   *stage // for Partition/Broadcast/side outputs: the stage they split
	outputs  any    // *outputs[T]
	sides    map[string]*sideOut
	emitMode stream.EmitMode
	// wms are the consumers of the stage's watermarks, in step with its records.
	wms []func(ic *inst) func(int64)
	// snapshots says the stage's tasks take part in checkpoints (roots only); replayable
	// says a source's splits can rewind.
	snapshots  bool
	replayable bool

	// Vertex roots only. instances may set newTask for the Build that calls it, and abort
	// to release what it opened should that Build fail.
	instances func(cfg *actor.Config) (int, error)
	abort     func()
	// keyOf turns a key of a keyed stage, or its text, into the key, its hash and its
	// bytes (state queries).
	keyOf   *keyFuncs
	newTask func(ic *inst) (actor.Task, error)
}

// link is a consumer of a stage's output: fused, or across an exchange to a keyed stage.
type link struct {
	to           *stage
	exchange     bool
	partitioning actor.Partitioning
	port         int
	// wire encodes an exchange's batches for other nodes.
	wire func() actor.RecordsCodec
}

// sideOut is a side output of a stage: the stream that carries it, and how to make, in an
// instance, the buffer that collects its values.
type sideOut struct {
	st   *stage
	push func(ic *inst) sideBuffer
}

// sideBuffer collects the side-output values of one stage in one instance; add reports
// whether v had the tag's type.
type sideBuffer struct {
	add   func(v any, ts int64) bool
	flush func()
}

// push hands a batch of records to the consumers of a stage. Consumers run synchronously
// and must neither change nor keep the slice: the caller reuses it.
type push[T any] func([]stream.Record[T])

// outputs holds the consumers of a stage that produces T.
type outputs[T any] struct {
	consumers []func(ic *inst) push[T]
}

// Stream is a typed stream of records of T, the output of a stage.
type Stream[T any] struct {
	st *stage
}

// Keyed is a stream partitioned by key: the input of a keyed stage.
type Keyed[K comparable, T any] struct {
	in       Stream[T]
	key      func(T) K
	hash     func(K) uint64
	opts     stageOpts
	keyCodec stream.Codec[K]
}

func typeName[T any]() string { return reflect.TypeFor[T]().String() }

func newStage[T any](g *Graph, kind string, opts []Option, inputs ...*stage) (*stage, stageOpts) {
	var o stageOpts
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	s := &stage{g: g, id: len(g.stages), kind: kind, typ: typeName[T](), inputs: inputs, name: o.name, outputs: &outputs[T]{}, emitMode: o.emit}
	if s.name == "" {
		s.name = fmt.Sprintf("%s-%d", kind, s.id)
	}
	if o.codec != nil {
		c, ok := o.codec.(stream.Codec[T])
		if !ok {
			g.errorf("stage %q: WithCodec gives a %T, not a codec of %s", s.name, o.codec, s.typ)
		}
		s.codec = c
	}
	for _, in := range inputs {
		if in == nil {
			g.errorf("stage %q: input is an empty Stream (not made by this package)", s.name)
		} else if in.g != g {
			g.errorf("stage %q: input %q belongs to graph %q, not %q", s.name, in.name, in.g.name, g.name)
		}
	}
	g.stages = append(g.stages, s)
	return s, o
}

// consume registers f as a fused consumer of s's output.
func consume[T any](from Stream[T], to *stage, f func(ic *inst) push[T]) {
	if from.st == nil || from.st.g != to.g {
		return // reported by newStage
	}
	outs := from.st.outputs.(*outputs[T])
	outs.consumers = append(outs.consumers, f)
	from.st.links = append(from.st.links, link{to: to})
	from.st.wms = append(from.st.wms, func(ic *inst) func(int64) { return wmOf(ic, to) })
}

// forward is the consumer that hands records to stage to's own consumers unchanged.
func forward[T any](to *stage) func(ic *inst) push[T] {
	return func(ic *inst) push[T] { return pushOf[T](ic, to) }
}

func nilFunc(g *Graph, s *stage, what string, isNil bool) {
	if isNil {
		g.errorf("stage %q: %s is nil", s.name, what)
	}
}

// From adds a source stage.
func From[T any](g *Graph, src stream.Source[T], opts ...Option) Stream[T] {
	s, _ := newStage[T](g, "source", opts)
	s.root, s.source, s.snapshots = true, true, true
	if src == nil {
		g.errorf("stage %q: source is nil", s.name)
		return Stream[T]{st: s}
	}
	// Each Build splits the source anew, and its job's tasks read those splits: newTask is
	// set here, and Build takes it right after calling instances.
	s.instances = func(cfg *actor.Config) (int, error) {
		splits, err := src.Splits(cfg.Parallelism)
		if err != nil {
			return 0, fmt.Errorf("source %q: %w", s.name, err)
		}
		if len(splits) == 0 {
			return 0, fmt.Errorf("source %q: no splits", s.name)
		}
		s.abort = func() {
			for _, sp := range splits {
				_ = sp.Close()
			}
		}
		s.replayable = true
		for _, sp := range splits {
			if _, ok := sp.(replayable); !ok {
				s.replayable = false
			}
		}
		s.newTask = func(ic *inst) (actor.Task, error) {
			t := &sourceTask[T]{env: ic.env, name: s.name, split: splits[ic.env.ID.Index], ic: ic, pace: ic.pace}
			t.appender, _ = t.split.(appender[T])
			if p, ok := t.split.(stream.Positioned); ok && t.appender == nil {
				t.positioned = p
				ic.env.Position = t.position
			}
			t.wm = wmOf(ic, s)
			t.push = pushOf[T](ic, s)
			return t, nil
		}
		return len(splits), nil
	}
	return Stream[T]{st: s}
}

// WithCodec sets the codec of the stream's records, for when they cross a re-partitioning
// boundary (KeyBy). It returns the same stream.
func (s Stream[T]) WithCodec(c stream.Codec[T]) Stream[T] {
	if s.st != nil {
		s.st.codec = c
	}
	return s
}

// Name returns the name of the stage that produces the stream.
func (s Stream[T]) Name() string {
	if s.st == nil {
		return ""
	}
	return s.st.name
}

// Map applies f to every record's value.
func Map[T, O any](s Stream[T], f func(T) O, opts ...Option) Stream[O] {
	ns, _ := newStage[O](s.g(), "map", opts, s.st)
	nilFunc(ns.g, ns, "map function", f == nil)
	consume(s, ns, func(ic *inst) push[T] { return plainMapper(ic, ns, f) })
	return Stream[O]{st: ns}
}

// TryMap applies f to every record's value; a record for which f returns an error goes to
// the dead-letter output with the error.
func TryMap[T, O any](s Stream[T], f func(T) (O, error), opts ...Option) Stream[O] {
	ns, _ := newStage[O](s.g(), "map", opts, s.st)
	nilFunc(ns.g, ns, "map function", f == nil)
	consume(s, ns, func(ic *inst) push[T] { return mapper(ic, ns, f) })
	return Stream[O]{st: ns}
}

// Filter keeps the records whose value satisfies keep.
func (s Stream[T]) Filter(keep func(T) bool, opts ...Option) Stream[T] {
	ns, _ := newStage[T](s.g(), "filter", opts, s.st)
	nilFunc(ns.g, ns, "filter function", keep == nil)
	consume(s, ns, func(ic *inst) push[T] {
		return transform(ic, ns, func(in []stream.Record[T], start int, out []stream.Record[T]) ([]stream.Record[T], int) {
			return filterFrom(ic.env, ns.name, in, start, out, keep)
		})
	})
	return Stream[T]{st: ns}
}

// FlatMap calls f for every record's value; f emits zero or more results. Results inherit
// the record's timestamp and kind.
func FlatMap[T, O any](s Stream[T], f func(in T, emit func(O)), opts ...Option) Stream[O] {
	ns, _ := newStage[O](s.g(), "flatMap", opts, s.st)
	nilFunc(ns.g, ns, "flatMap function", f == nil)
	consume(s, ns, func(ic *inst) push[T] {
		next := pushOf[O](ic, ns)
		fm := &flatMapper[T, O]{env: ic.env, name: ns.name, f: f}
		send := func() {
			defer func() { // even when next panics: no record goes on twice
				clear(fm.out)
				fm.out = fm.out[:0]
			}()
			next(fm.out)
		}
		// What f emits goes on a batch at a time, even in the middle of one call of f: one
		// record may make any number, and the stages after it (an exchange that waits
		// for credit) must not receive them all at once.
		batch := ic.env.Config.BatchSize
		fm.emit = func(v O) {
			fm.out = append(fm.out, stream.Record[O]{Value: v, Time: fm.cur.Time, Kind: fm.cur.Kind})
			if len(fm.out) >= batch {
				send()
			}
		}
		return func(in []stream.Record[T]) {
			fm.out = fm.out[:0]
			for i := 0; i < len(in); {
				i = fm.from(in, i)
			}
			if len(fm.out) > 0 {
				send()
			}
		}
	})
	return Stream[O]{st: ns}
}

// To writes the stream to sink. A sink ends a branch of the graph.
func (s Stream[T]) To(sink stream.Sink[T], opts ...Option) {
	ns, _ := newStage[T](s.g(), "sink", opts, s.st)
	ns.sink = true
	if sink == nil {
		ns.g.errorf("stage %q: sink is nil", ns.name)
		return
	}
	if tp, ok := sink.(stream.TwoPhaseSink[T]); ok {
		ns.g.twoPhase = append(ns.g.twoPhase, func(lastComplete int64, owns func(int) bool) error {
			if owns == nil {
				owns = func(int) bool { return true }
			}
			return tp.Recover(lastComplete, owns)
		})
		consume(s, ns, func(ic *inst) push[T] {
			env, name, uid := ic.env, ns.name, ic.env.UID
			ic.preCommits = append(ic.preCommits, func(id int64) error { return tp.PreCommit(uid, id) })
			ic.commits = append(ic.commits, tp.Commit)
			return func(in []stream.Record[T]) {
				if err := tp.WriteBatchFor(uid, in); err != nil {
					for _, r := range in {
						env.DeadLetter(stream.DeadLetter{Stage: name, Reason: fmt.Sprintf("write to sink: %v", err), Value: r.Value, Time: r.Time})
					}
					return
				}
				env.CountOut(len(in))
			}
		})
		ns.g.onEndSink(ns, sink.Close)
		return
	}
	consume(s, ns, func(ic *inst) push[T] {
		env, name := ic.env, ns.name
		return func(in []stream.Record[T]) {
			if err := sink.WriteBatch(in); err != nil {
				for _, r := range in {
					env.DeadLetter(stream.DeadLetter{Stage: name, Reason: fmt.Sprintf("write to sink: %v", err), Value: r.Value, Time: r.Time})
				}
				return
			}
			env.CountOut(len(in))
		}
	})
	ns.g.onEndSink(ns, sink.Close)
}

func (s Stream[T]) g() *Graph {
	if s.st == nil {
		return &Graph{name: "<none>"}
	}
	return s.st.g
}

// MergeJunction is a fan-in whose inputs can be added after its output is used, as in
// Akka's GraphDSL. That makes cycles possible to write, and Build rejects them: Eddy runs
// acyclic graphs (a cycle under credit-based flow control can deadlock).
type MergeJunction[T any] struct {
	st *stage
}

// NewMerge returns an empty merge junction.
func NewMerge[T any](g *Graph, opts ...Option) *MergeJunction[T] {
	s, _ := newStage[T](g, "merge", opts)
	return &MergeJunction[T]{st: s}
}

// Add makes s an input of the junction.
func (m *MergeJunction[T]) Add(s Stream[T]) *MergeJunction[T] {
	if s.st == nil {
		m.st.g.errorf("stage %q: input is an empty Stream (not made by this package)", m.st.name)
		return m
	}
	if s.st.g != m.st.g {
		m.st.g.errorf("stage %q: input %q belongs to graph %q", m.st.name, s.st.name, s.st.g.name)
		return m
	}
	m.st.inputs = append(m.st.inputs, s.st)
	consume(s, m.st, forward[T](m.st))
	return m
}

// Out returns the merged stream.
func (m *MergeJunction[T]) Out() Stream[T] { return Stream[T]{st: m.st} }

// Merge returns one stream of the records of all of ss, in no fixed order across inputs.
func Merge[T any](ss ...Stream[T]) Stream[T] {
	if len(ss) == 0 {
		g := &Graph{}
		g.errorf("merge: no inputs")
		return Stream[T]{}
	}
	m := NewMerge[T](ss[0].g())
	for _, s := range ss {
		m.Add(s)
	}
	return m.Out()
}

// Broadcast returns n streams that each carry every record of s.
func Broadcast[T any](s Stream[T], n int, opts ...Option) []Stream[T] {
	return fanOut(s, "broadcast", n, opts, func(ic *inst, outs []push[T]) push[T] {
		return func(in []stream.Record[T]) {
			for _, o := range outs {
				o(in)
			}
		}
	})
}

// Partition returns n streams; each record of s goes to the one whose index pick returns.
// An index out of [0, n) sends the record to the dead-letter output.
func Partition[T any](s Stream[T], n int, pick func(T) int, opts ...Option) []Stream[T] {
	var name string
	outs := fanOut(s, "partition", n, opts, func(ic *inst, outs []push[T]) push[T] {
		p := &partitioner[T]{env: ic.env, name: name, pick: pick, parts: make([][]stream.Record[T], len(outs))}
		return func(in []stream.Record[T]) {
			for i := 0; i < len(in); {
				i = p.from(in, i)
			}
			for i, part := range p.parts {
				if len(part) > 0 {
					outs[i](part)
				}
				clear(part)
				p.parts[i] = part[:0]
			}
		}
	})
	if len(outs) > 0 && outs[0].st != nil {
		name = outs[0].st.parent.name
		nilFunc(s.g(), outs[0].st.parent, "partition function", pick == nil)
	}
	return outs
}

func fanOut[T any](s Stream[T], kind string, n int, opts []Option, route func(ic *inst, outs []push[T]) push[T]) []Stream[T] {
	g := s.g()
	p, _ := newStage[T](g, kind, opts, s.st)
	if n < 1 {
		g.errorf("stage %q: %d outputs; want at least 1", p.name, n)
		n = 1
	}
	children := make([]*stage, n)
	streams := make([]Stream[T], n)
	for i := range children {
		c, _ := newStage[T](g, kind+"-out", []Option{Name(fmt.Sprintf("%s.%d", p.name, i))}, p)
		c.parent = p
		children[i] = c
		streams[i] = Stream[T]{st: c}
		p.links = append(p.links, link{to: c})
		p.wms = append(p.wms, func(ic *inst) func(int64) { return wmOf(ic, c) })
	}
	consume(s, p, func(ic *inst) push[T] {
		outs := make([]push[T], n)
		for i, c := range children {
			outs[i] = pushOf[T](ic, c)
		}
		return route(ic, outs)
	})
	return streams
}

// Connected is two streams of different types joined for a two-input stage.
type Connected[A, B any] struct {
	a Stream[A]
	b Stream[B]
}

// Connect joins a and b for a two-input stage (CoMap).
func Connect[A, B any](a Stream[A], b Stream[B]) Connected[A, B] { return Connected[A, B]{a, b} }

// CoMap maps the records of both connected streams into one stream of O.
func CoMap[A, B, O any](c Connected[A, B], fa func(A) O, fb func(B) O, opts ...Option) Stream[O] {
	ns, _ := newStage[O](c.a.g(), "coMap", opts, c.a.st, c.b.st)
	nilFunc(ns.g, ns, "first map function", fa == nil)
	nilFunc(ns.g, ns, "second map function", fb == nil)
	consume(c.a, ns, func(ic *inst) push[A] { return plainMapper(ic, ns, fa) })
	consume(c.b, ns, func(ic *inst) push[B] { return plainMapper(ic, ns, fb) })
	return Stream[O]{st: ns}
}

// SideOutput returns the stream of the values that stage s emits to tag.
func SideOutput[O, E any](s Stream[O], tag stream.Tag[E], opts ...Option) Stream[E] {
	g := s.g()
	if len(opts) == 0 {
		opts = []Option{Name(fmt.Sprintf("%s.%s", s.Name(), tag.Name()))}
	}
	ns, _ := newStage[E](g, "side", opts, s.st)
	if s.st == nil {
		return Stream[E]{st: ns}
	}
	ns.parent = s.st
	if s.st.sides == nil {
		s.st.sides = map[string]*sideOut{}
	}
	if _, dup := s.st.sides[tag.Name()]; dup {
		g.errorf("stage %q: side output %q taken twice", s.st.name, tag.Name())
	}
	s.st.links = append(s.st.links, link{to: ns})
	s.st.wms = append(s.st.wms, func(ic *inst) func(int64) { return wmOf(ic, ns) })
	s.st.sides[tag.Name()] = &sideOut{st: ns, push: func(ic *inst) sideBuffer {
		next := pushOf[E](ic, ns)
		batch := ic.env.Config.BatchSize
		var buf []stream.Record[E]
		flush := func() {
			if len(buf) > 0 {
				next(buf)
			}
			clear(buf)
			buf = buf[:0]
		}
		return sideBuffer{
			add: func(v any, ts int64) bool {
				e, ok := v.(E)
				if ok {
					buf = append(buf, stream.Record[E]{Value: e, Time: ts})
					if len(buf) >= batch {
						flush() // a batch at a time, however many one record makes
					}
				}
				return ok
			},
			flush: flush,
		}
	}}
	return Stream[E]{st: ns}
}

// KeyBy partitions s by key: the next stage (Process, Aggregate, Reduce, Count) runs per
// key group, with per-key state. The records of s cross a re-partitioning boundary, so their
// type needs a Codec (built-in types have one; give others with WithCodec).
func KeyBy[T any, K comparable](s Stream[T], key func(T) K, opts ...Option) Keyed[K, T] {
	var o stageOpts
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	k := Keyed[K, T]{in: s, key: key, opts: o}
	g := s.g()
	if key == nil {
		g.errorf("keyBy after %q: key function is nil", s.Name())
	}
	if o.keyCodec != nil {
		c, ok := o.keyCodec.(stream.Codec[K])
		if !ok {
			g.errorf("keyBy after %q: WithKeyCodec gives a %T, not a codec of %s", s.Name(), o.keyCodec, typeName[K]())
		}
		k.keyCodec = c
	}
	k.hash = operator.KeyHasher[K](k.keyCodec)
	if k.hash == nil {
		g.errorf("keyBy after %q: key type %s has no built-in codec; give one with graph.WithKeyCodec", s.Name(), typeName[K]())
	}
	return k
}

// keyedStage adds the stage of a keyed operator with input k, wiring the exchange.
func keyedStage[K comparable, T, O any](k Keyed[K, T], kind string, opts []Option) *stage {
	ns, _ := keyedStageOpts[K, T, O](k, kind, opts)
	return ns
}

func keyedStageOpts[K comparable, T, O any](k Keyed[K, T], kind string, opts []Option) (*stage, stageOpts) {
	ns, so := keyedStageUnwired[K, T, O](k, kind, opts)
	wireKeyedInput(ns, k, 0)
	return ns, so
}

// keyedStageUnwired adds the stage of a keyed operator with input k, whose exchange the
// caller wires.
func keyedStageUnwired[K comparable, T, O any](k Keyed[K, T], kind string, opts []Option) (*stage, stageOpts) {
	ns, so := newStage[O](k.in.g(), kind, opts, k.in.st)
	ns.root, ns.keyed = true, true
	ns.keyDesc = typeName[K]()
	ns.instances = func(cfg *actor.Config) (int, error) { return cfg.MaxKeyGroups, nil }
	ns.keyOf = keyFuncsOf(k.keyCodec, k.hash)
	return ns, so
}

// keyedStage2 adds a keyed stage with two inputs, ka on port 0 and kb on port 1: both are
// partitioned by their key, so that the records of one key meet in one key group.
func keyedStage2[K comparable, A, B, O any](ka Keyed[K, A], kb Keyed[K, B], kind string, opts []Option) (*stage, stageOpts) {
	ns, so := newStage[O](ka.in.g(), kind, opts, ka.in.st, kb.in.st)
	ns.root, ns.keyed = true, true
	ns.keyDesc = typeName[K]()
	ns.instances = func(cfg *actor.Config) (int, error) { return cfg.MaxKeyGroups, nil }
	ns.keyOf = keyFuncsOf(ka.keyCodec, ka.hash)
	wireKeyedInput(ns, ka, 0)
	wireKeyedInput(ns, kb, 1)
	return ns, so
}

// wireKeyedInput makes k's stream feed port of keyed stage ns through a hash exchange.
func wireKeyedInput[K comparable, T any](ns *stage, k Keyed[K, T], port int) {
	in := k.in.st
	if in == nil || in.g != ns.g {
		return // reported by newStage
	}
	wire := requireCodec[T](ns, in, "KeyBy", k.opts.codec)
	outs := in.outputs.(*outputs[T])
	key, hash := k.key, k.hash
	writer := func(ic *inst) *actor.Writer[T] {
		return ic.writer(ns, port, func(g *actor.OutputGroup) any {
			n := g.Destinations()
			return actor.NewWriter(g, func(r stream.Record[T]) int { return operator.KeyGroup(hash(key(r.Value)), n) })
		}).(*actor.Writer[T])
	}
	outs.consumers = append(outs.consumers, func(ic *inst) push[T] { return writer(ic).WriteAll })
	in.wms = append(in.wms, func(ic *inst) func(int64) { return writer(ic).Watermark })
	in.links = append(in.links, link{to: ns, exchange: true, partitioning: actor.Hash, port: port, wire: wire})
}

// requireCodec checks at Build that the records of in, which cross a boundary between actors
// into ns, have a codec: the one given to the crossing stage, the one given to in, or a
// built-in one. It returns how the channel's batches cross nodes, for after the check.
func requireCodec[T any](ns, in *stage, boundary string, codec any) func() actor.RecordsCodec {
	resolve := requireCodecOf[T](ns, in, boundary, codec)
	return func() actor.RecordsCodec {
		c, err := resolve()
		if err != nil {
			return nil // reported by the check, before any plan is made
		}
		return actor.NewRecordsCodec(c)
	}
}

// requireCodecOf is requireCodec returning the codec of T itself.
func requireCodecOf[T any](ns, in *stage, boundary string, codec any) func() (stream.Codec[T], error) {
	resolve := func() (stream.Codec[T], error) {
		c := codec
		if c == nil {
			c = in.codec
		}
		if c == nil {
			if builtin, ok := stream.CodecFor[T](); ok {
				return builtin, nil
			}
			return nil, fmt.Errorf("stage %q: records of type %s from %q cross a re-partitioning boundary (%s) without a Codec; give one with graph.WithCodec", ns.name, typeName[T](), in.name, boundary)
		}
		typed, ok := c.(stream.Codec[T])
		if !ok {
			return nil, fmt.Errorf("stage %q: the codec for %q is a %T, not a codec of %s", ns.name, in.name, c, typeName[T]())
		}
		return typed, nil
	}
	ns.g.checks = append(ns.g.checks, func() error {
		_, err := resolve()
		return err
	})
	return resolve
}

// Rebalance puts an asynchronous boundary after s: its records are spread round-robin, a
// batch at a time, over Parallelism instances that run the stages after it (Flink's
// rebalance). Use it when a source cannot be split and what follows is expensive. The
// records cross a boundary between actors, so their type needs a Codec.
func Rebalance[T any](s Stream[T], opts ...Option) Stream[T] {
	ns, o := newStage[T](s.g(), "rebalance", opts, s.st)
	ns.root = true
	ns.instances = func(cfg *actor.Config) (int, error) { return cfg.Parallelism, nil }
	ns.snapshots = true // stateless
	ns.newTask = func(ic *inst) (actor.Task, error) {
		return &forwardTask[T]{ic: ic, push: pushOf[T](ic, ns), wm: wmOf(ic, ns)}, nil
	}
	if s.st == nil || s.st.g != ns.g {
		return Stream[T]{st: ns}
	}
	wire := requireCodec[T](ns, s.st, "Rebalance", o.codec)
	outs := s.st.outputs.(*outputs[T])
	writer := func(ic *inst) *actor.Writer[T] {
		return ic.writer(ns, 0, func(g *actor.OutputGroup) any { return actor.NewWriter[T](g, nil) }).(*actor.Writer[T])
	}
	outs.consumers = append(outs.consumers, func(ic *inst) push[T] { return writer(ic).WriteAll })
	s.st.wms = append(s.st.wms, func(ic *inst) func(int64) { return writer(ic).Watermark })
	s.st.links = append(s.st.links, link{to: ns, exchange: true, partitioning: actor.Rebalance, wire: wire})
	return Stream[T]{st: ns}
}

// Process runs fn per key: the most general keyed stage, with per-key state, timers and
// side outputs.
func Process[K comparable, T, O any](k Keyed[K, T], fn stream.KeyedProcess[K, T, O], opts ...Option) Stream[O] {
	return process(k, fn, "process", opts)
}

// process adds a keyed process stage of the given kind (its default name is kind-N).
func process[K comparable, T, O any](k Keyed[K, T], fn stream.KeyedProcess[K, T, O], kind string, opts []Option) Stream[O] {
	ns, o := keyedStageOpts[K, T, O](k, kind, opts)
	ns.snapshots = true
	if err := o.ttl.Validate(); err != nil {
		ns.g.errorf("stage %q: %v", ns.name, err)
	}
	nilFunc(ns.g, ns, "OnRecord", fn.OnRecord == nil)
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := &processTask[K, T, O]{env: ic.env, name: ns.name, ic: ic, wm: wmOf(ic, ns)}
		t.out = newOutBuffer(ic, pushOf[O](ic, ns))
		emitter := operator.NewEmitter(t.out.add, func(tag string, v any, ts int64) { ic.side(ns, tag, v, ts) })
		t.op = operator.NewProcessOperator(k.key, fn, emitter)
		if err := t.op.SetTTL(o.ttl); err != nil {
			return nil, err
		}
		t.ttl = o.ttl
		t.handle = t.process
		return t, nil
	}
	return Stream[O]{st: ns}
}

// Aggregate folds the records of each key with agg and emits the running result per key
// as KV(key, result), when the emit mode says (default: per batch, compacted).
//
// When agg implements stream.Merger, the records are folded per key in each upstream
// instance first, over short mini-batches, and the partial results merged in the keyed
// stage (local aggregation; see LocalAggregation): the final results are the same, but a
// running result is sent per merged partial rather than per record. Not with
// stream.EmitEveryUpdate nor with a StateTTL.
func Aggregate[K comparable, T, A, R any](k Keyed[K, T], agg stream.Aggregator[T, A, R], opts ...Option) Stream[stream.KV[K, R]] {
	return aggregate(k, agg, "aggregate", opts)
}

func aggregate[K comparable, T, A, R any](k Keyed[K, T], agg stream.Aggregator[T, A, R], kind string, opts []Option) Stream[stream.KV[K, R]] {
	ns, o := keyedStageUnwired[K, T, stream.KV[K, R]](k, kind, opts)
	ns.snapshots = true
	if err := o.ttl.Validate(); err != nil {
		ns.g.errorf("stage %q: %v", ns.name, err)
	}
	nilFunc(ns.g, ns, "aggregator", agg == nil)
	if agg != nil && localAggregates(agg, o) {
		wireCombiningInput(ns, k, agg)
	} else {
		wireKeyedInput(ns, k, 0)
	}
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := &aggregateTask[K, T, A, R]{env: ic.env, name: ns.name, ic: ic, wm: wmOf(ic, ns), keys: keyCodecOf(k.keyCodec), key: k.key}
		t.out = newOutBuffer(ic, pushOf[stream.KV[K, R]](ic, ns))
		t.op = operator.NewAggregateOperator(k.key, agg, ns.emitMode, t.out.add)
		if err := t.op.SetTTL(o.ttl); err != nil {
			return nil, err
		}
		if db, ok := ic.env.Config.StateBackend.(*persistence.BadgerDB); ok {
			var err error
			if ic.env.Config.Checkpoints != nil {
				// With checkpoints, the state is what the checkpoint restored, or nothing:
				// what a run that died wrote after its last complete checkpoint must go. A
				// fresh generation starts empty; the old one is deleted in the background.
				t.store, err = db.FreshKeyedValues(ic.env.ID.String())
			} else {
				t.store, err = db.KeyedValues(ic.env.ID.String())
			}
			if err != nil {
				return nil, fmt.Errorf("stage %q: %w", ns.name, err)
			}
			if err := t.op.SetStore(stateStore{t.store}, func(k K) ([]byte, error) { return t.keys.Append(nil, k) }, stateCacheKeys); err != nil {
				return nil, fmt.Errorf("stage %q: %w", ns.name, err)
			}
			if ic.env.Config.Checkpoints != nil {
				// Its snapshots are incremental, on the checkpoint it restored when that is in
				// the store (a savepoint is not: the first snapshot is then full). The chain
				// behind that checkpoint is unknown here: it counts as half the longest.
				t.deltas, t.runs = &deltaLog{}, &runLog{}
				sink, fromStore := ic.env.Config.Checkpoints.(*storeSink)
				if fromStore {
					t.deltas.budget = &sink.deltaBytes
				}
				if cp := ic.env.Config.Restore; cp != nil && cp.ID != actor.FinalCheckpoint && fromStore && sink.savepoint == "" {
					t.deltas.base, t.deltas.chain = cp.ID, maxDeltaChain/2
				}
				t.op.OnWriteBack(t.deltas.written)
			}
		}
		t.ttl = o.ttl
		return t, nil
	}
	return Stream[stream.KV[K, R]]{st: ns}
}

// Reduce combines the records of each key with f and emits the running value per key. f
// must be associative (f(f(a, b), c) == f(a, f(b, c))): with local aggregation (the
// default, see Aggregate) records are combined in each upstream instance first and the
// partial values combined with f again. Pass LocalAggregation(false) for an f that is not.
func Reduce[K comparable, T any](k Keyed[K, T], f func(acc, v T) T, opts ...Option) Stream[stream.KV[K, T]] {
	if f == nil {
		k.in.g().errorf("reduce after %q: reduce function is nil", k.in.Name())
	}
	return aggregate(k, agg.Reduce(f), "reduce", opts)
}

// Count counts the records of each key and emits the running count per key (with local
// aggregation, see Aggregate).
func Count[K comparable, T any](k Keyed[K, T], opts ...Option) Stream[stream.KV[K, int64]] {
	return aggregate(k, agg.Count[T](), "count", opts)
}

// Timestamps sets every record's event time to ts(value) (Unix ms) and generates the
// stream's watermarks with strategy; watermarks from before it are dropped, but for the end
// of input.
func Timestamps[T any](s Stream[T], ts func(T) int64, strategy stream.WatermarkStrategy[T], opts ...Option) Stream[T] {
	ns, _ := newStage[T](s.g(), "timestamps", opts, s.st)
	nilFunc(ns.g, ns, "timestamp function", ts == nil)
	nilFunc(ns.g, ns, "watermark strategy", strategy == nil)
	if s.st == nil || s.st.g != ns.g {
		return Stream[T]{st: ns}
	}
	outs := s.st.outputs.(*outputs[T])
	outs.consumers = append(outs.consumers, func(ic *inst) push[T] {
		st := &stamper[T]{env: ic.env, name: ns.name, ts: ts, gen: strategy.NewGenerator(), next: pushOf[T](ic, ns), wm: wmOf(ic, ns)}
		return st.push
	})
	s.st.links = append(s.st.links, link{to: ns})
	s.st.wms = append(s.st.wms, func(ic *inst) func(int64) {
		next := wmOf(ic, ns)
		return func(w int64) {
			if w == stream.MaxWatermark {
				next(w)
			}
		}
	})
	return Stream[T]{st: ns}
}

// Window aggregates each key's records into event-time windows with agg and emits a
// WindowResult per window when the watermark passes its end (and again for each record that
// arrives within Lateness). Records later than that go to the side output
// stream.LateTag[T](), and are counted; take them with SideOutput, or they become dead
// letters. Session windows need an aggregator that implements stream.Merger.
func Window[K comparable, T, A, R any](k Keyed[K, T], w stream.WindowAssigner, agg stream.Aggregator[T, A, R], opts ...Option) Stream[stream.WindowResult[K, R]] {
	ns, o := keyedStageOpts[K, T, stream.WindowResult[K, R]](k, "window", opts)
	ns.keyDesc += ", " + w.String()
	if agg == nil {
		ns.g.errorf("stage %q: aggregator is nil", ns.name)
		return Stream[stream.WindowResult[K, R]]{st: ns}
	}
	wopts := operator.WindowOptions{Lateness: o.lateness, Changelog: o.changelog, Trigger: o.trigger}
	// Build the operator once here so that a wrong window setup is a Build error.
	if _, err := operator.NewWindowOperator(k.key, w, agg, wopts, nil, nil); err != nil {
		ns.g.errorf("stage %q: %v", ns.name, err)
		return Stream[stream.WindowResult[K, R]]{st: ns}
	}
	late := stream.LateTag[T]().Name()
	ns.snapshots = true
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := &windowTask[K, T, A, R]{env: ic.env, name: ns.name, ic: ic, wm: wmOf(ic, ns)}
		t.out = newOutBuffer(ic, pushOf[stream.WindowResult[K, R]](ic, ns))
		op, err := operator.NewWindowOperator(k.key, w, agg, wopts, t.out.add, func(r stream.Record[T]) {
			ic.env.CountLate()
			ic.side(ns, late, r.Value, r.Time)
		})
		if err != nil {
			return nil, err
		}
		t.op = op
		return t, nil
	}
	return Stream[stream.WindowResult[K, R]]{st: ns}
}

// ProcessWindow keeps every record of each key's event-time windows and, when a window
// fires, calls fn with the key, the window and all its records (in arrival order), which
// emits any number of results stamped with the window's end − 1 (Flink's
// ProcessWindowFunction). It costs memory per record; prefer Window with an Aggregator when
// the result can be computed incrementally. Options and late records are as for Window;
// with Changelog, a re-firing's retraction is not passed to fn.
func ProcessWindow[K comparable, T, O any](k Keyed[K, T], w stream.WindowAssigner, fn func(key K, win stream.TimeWindow, elems []T, emit func(O)), opts ...Option) Stream[O] {
	ns, o := keyedStageOpts[K, T, O](k, "processWindow", opts)
	ns.keyDesc += ", " + w.String()
	nilFunc(ns.g, ns, "window function", fn == nil)
	agg := operator.Collecting[T]{}
	wopts := operator.WindowOptions{Lateness: o.lateness, Changelog: o.changelog, Trigger: o.trigger}
	if _, err := operator.NewWindowOperator(k.key, w, agg, wopts, nil, nil); err != nil {
		ns.g.errorf("stage %q: %v", ns.name, err)
		return Stream[O]{st: ns}
	}
	late := stream.LateTag[T]().Name()
	ns.snapshots = true
	ns.newTask = func(ic *inst) (actor.Task, error) {
		t := &windowTask[K, T, []T, []T]{env: ic.env, name: ns.name, ic: ic, wm: wmOf(ic, ns)}
		out := newOutBuffer(ic, pushOf[O](ic, ns))
		var ts int64
		emit := func(v O) { out.add(stream.Record[O]{Value: v, Time: ts}) }
		// The window task's own buffer holds the operator's results; fn turns each into O.
		t.out = newOutBuffer[stream.WindowResult[K, []T]](ic, func(recs []stream.Record[stream.WindowResult[K, []T]]) {
			for _, r := range recs {
				if r.Kind == stream.Retract {
					continue
				}
				ts = r.Time
				callWindowFunc(ic.env, ns.name, r, func() {
					fn(r.Value.Key, stream.TimeWindow{Start: r.Value.Start, End: r.Value.End}, r.Value.Value, emit)
				})
			}
			out.flush()
		})
		op, err := operator.NewWindowOperator(k.key, w, agg, wopts, t.out.add, func(r stream.Record[T]) {
			ic.env.CountLate()
			ic.side(ns, late, r.Value, r.Time)
		})
		if err != nil {
			return nil, err
		}
		t.op = op
		return t, nil
	}
	return Stream[O]{st: ns}
}

// callWindowFunc calls f, the window function of one firing; a panic costs that firing a
// dead letter, with the window's result as its value.
func callWindowFunc[R any](env *actor.Env, stage string, r stream.Record[R], f func()) {
	defer func() {
		if p := recover(); p != nil {
			if actor.Unwinding(p) {
				panic(p)
			}
			env.DeadLetter(stream.DeadLetter{Stage: stage, Reason: fmt.Sprintf("panic in the window function: %v", p), Value: r.Value, Time: r.Time})
		}
	}()
	f()
}

// MapBatches calls f once per batch of records that reaches the stage (what its upstream
// hands on at a time: a source's chunk, an exchange's batch), for work that pays per call
// rather than per record, such as scoring a batch with a model. f emits results with emit,
// any number in any order, stamped as it likes, and sends a record it cannot handle to the
// dead-letter output with reject; it may run goroutines while it works, but the batch is
// done when f returns: f must not keep in, nor call emit or reject after it returns. ctx
// is the job's context, done when the job is cancelled.
//
// The stage holds nothing between batches, so a checkpoint barrier, which passes between
// batches, never finds a record half done: what f emitted goes out before the barrier. A
// panic in f costs the whole batch (every record to the dead-letter output, nothing of
// what f emitted goes on).
func MapBatches[T, O any](s Stream[T], f func(ctx context.Context, in []stream.Record[T], emit func(stream.Record[O]), reject func(r stream.Record[T], reason string)), opts ...Option) Stream[O] {
	ns, _ := newStage[O](s.g(), "mapBatches", opts, s.st)
	nilFunc(ns.g, ns, "batch function", f == nil)
	consume(s, ns, func(ic *inst) push[T] {
		next := pushOf[O](ic, ns)
		bm := &batchMapper[T, O]{env: ic.env, name: ns.name, f: f}
		bm.emit = func(r stream.Record[O]) {
			bm.mu.Lock()
			bm.out = append(bm.out, r)
			bm.mu.Unlock()
		}
		bm.reject = func(r stream.Record[T], reason string) {
			bm.mu.Lock()
			bm.rejected = append(bm.rejected, rejected[T]{r, reason})
			bm.mu.Unlock()
		}
		return func(in []stream.Record[T]) {
			if len(in) == 0 {
				return
			}
			bm.run(in)
			for _, rj := range bm.rejected {
				deadLetter(ic.env, ns.name, rj.reason, []stream.Record[T]{rj.rec}, 0)
			}
			if len(bm.out) > 0 {
				next(bm.out)
			}
			clear(bm.out)
			clear(bm.rejected)
			bm.out, bm.rejected = bm.out[:0], bm.rejected[:0]
		}
	})
	return Stream[O]{st: ns}
}

// Invalid records err as an error of the graph s belongs to, which Build returns: for
// packages that make stages out of this DSL (an inference stage, a connector) and find
// their own configuration wrong, so that the mistake is a Build error, not a run-time one.
func Invalid[T any](s Stream[T], err error) {
	if err != nil {
		s.g().errs = append(s.g().errs, err)
	}
}
