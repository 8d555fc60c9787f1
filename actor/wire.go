package actor

import (
	"encoding/binary"
	"errors"
	"fmt"

	pa "github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/eddyflow/eddy/stream"
)

// RecordsCodec encodes the records of a batch for an instance on another node, and decodes
// them there. Edges that may cross nodes carry one (graph sets it from the stage's Codec).
type RecordsCodec interface {
	// AppendRecords appends the encoding of records (a []stream.Record[T]), n of them, to
	// dst.
	AppendRecords(dst []byte, records any, n int) ([]byte, error)
	// DecodeRecords decodes what AppendRecords wrote, into reuse (a slice it returned
	// before, whose records are no longer needed) when that is not nil. Bad input is an
	// error, never a panic.
	DecodeRecords(reuse any, src []byte) (records any, n int, err error)
}

// NewRecordsCodec returns the RecordsCodec of records whose values c encodes: per record
// its event time, its kind and its value.
func NewRecordsCodec[T any](c stream.Codec[T]) RecordsCodec { return recordsCodec[T]{c} }

type recordsCodec[T any] struct{ c stream.Codec[T] }

func (rc recordsCodec[T]) AppendRecords(dst []byte, records any, n int) ([]byte, error) {
	recs, ok := records.([]stream.Record[T])
	if !ok || len(recs) < n {
		return dst, fmt.Errorf("encode records: got %T of %d, want %d records of %T", records, len(recs), n, *new(T))
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	var val []byte
	for _, r := range recs[:n] {
		dst = binary.AppendVarint(dst, r.Time)
		dst = append(dst, byte(r.Kind))
		var err error
		if val, err = rc.c.Append(val[:0], r.Value); err != nil {
			return dst, fmt.Errorf("encode record: %w", err)
		}
		dst = appendBytes(dst, val)
	}
	return dst, nil
}

func (rc recordsCodec[T]) DecodeRecords(reuse any, src []byte) (any, int, error) {
	d := wireReader{b: src}
	n := d.count(3) // a record takes at least 3 bytes
	recs, _ := reuse.([]stream.Record[T])
	if cap(recs) < n {
		recs = make([]stream.Record[T], 0, n)
	}
	recs = recs[:0]
	for range n {
		t := d.varint()
		kind := d.byte()
		val := d.bytes()
		if d.err != nil {
			break
		}
		v, err := rc.c.Decode(val)
		if err != nil {
			return nil, 0, fmt.Errorf("decode record %d: %w", len(recs), err)
		}
		recs = append(recs, stream.Record[T]{Value: v, Time: t, Kind: stream.Kind(kind)})
	}
	if err := d.done(); err != nil {
		return nil, 0, fmt.Errorf("decode records: %w", err)
	}
	return recs, len(recs), nil
}

// Messages between nodes travel as a wrapperspb.BytesValue: Proto.Actor's remote at the
// pinned version serializes every message with protobuf (its writer ignores the
// serializer id), and a well-known wrapper spares Eddy generated code. The first byte says
// what the rest is.
const (
	wireBatch    = 'B'
	wireCredit   = 'C'
	wireEOS      = 'E'
	wireTrigger  = 'T'
	wireComplete = 'K'
	wireAck      = 'A'
	wireDone     = 'D'
	wireFail     = 'X'
	wireReady    = 'R'
	wireGo       = 'G'
	wireHandoff  = 'H'
	wireStop     = 'S'
)

// encodeBatch encodes b, its records with codec, for a receiver on another node.
func encodeBatch(b *Batch, codec RecordsCodec) (*wrapperspb.BytesValue, error) {
	if codec == nil {
		return nil, errors.New("the edge has no RecordsCodec, so its records cannot cross nodes")
	}
	out := []byte{wireBatch}
	out = binary.AppendUvarint(out, uint64(b.Port))
	out = binary.AppendUvarint(out, uint64(b.From))
	out = binary.AppendUvarint(out, uint64(b.Group))
	out = binary.AppendUvarint(out, uint64(b.Dest))
	out = appendPID(out, b.Sender)
	out = binary.AppendUvarint(out, uint64(len(b.Marks)))
	for _, m := range b.Marks {
		out = binary.AppendUvarint(out, uint64(m.Pos))
		out = binary.AppendVarint(out, m.Watermark)
		out = binary.AppendVarint(out, m.Barrier)
	}
	var err error
	if b.N > 0 {
		if out, err = codec.AppendRecords(out, b.Records, b.N); err != nil {
			return nil, err
		}
	}
	return &wrapperspb.BytesValue{Value: out}, nil
}

// encodeControl encodes the messages between instances other than batches.
func encodeControl(msg any) (*wrapperspb.BytesValue, error) {
	var out []byte
	switch m := msg.(type) {
	case *Credit:
		out = binary.AppendUvarint(append(out, wireCredit), uint64(m.Group))
		out = binary.AppendUvarint(out, uint64(m.Dest))
	case *EndOfStream:
		out = binary.AppendUvarint(append(out, wireEOS), uint64(m.Port))
		out = binary.AppendUvarint(out, uint64(m.From))
	case triggerMsg:
		out = binary.AppendVarint(append(out, wireTrigger), m.id)
	case completeMsg:
		out = binary.AppendVarint(append(out, wireComplete), m.id)
	default:
		return nil, fmt.Errorf("message %T cannot cross nodes", msg)
	}
	return &wrapperspb.BytesValue{Value: out}, nil
}

// decodeInstanceMessage decodes a message for an instance; inputs gives the codec of each of
// its input ports, and spare (may be nil) a slice of records of a port to decode into.
func decodeInstanceMessage(b []byte, inputs []RecordsCodec, spare func(port int) any) (any, error) {
	if len(b) == 0 {
		return nil, errors.New("decode message: empty")
	}
	d := wireReader{b: b[1:]}
	var msg any
	switch b[0] {
	case wireBatch:
		batch := &Batch{Port: d.int(), From: d.int(), Group: d.int(), Dest: d.int(), Sender: d.pid()}
		n := d.count(3)
		for range n {
			batch.Marks = append(batch.Marks, Mark{Pos: d.int(), Watermark: d.varint(), Barrier: d.varint()})
		}
		if d.err != nil {
			return nil, fmt.Errorf("decode batch: %w", d.err)
		}
		if len(d.b) > 0 {
			if batch.Port >= len(inputs) || inputs[batch.Port] == nil {
				return nil, fmt.Errorf("decode batch: records for port %d, which has no codec", batch.Port)
			}
			var reuse any
			if spare != nil {
				reuse = spare(batch.Port)
			}
			recs, n, err := inputs[batch.Port].DecodeRecords(reuse, d.b)
			if err != nil {
				return nil, fmt.Errorf("decode batch: %w", err)
			}
			batch.Records, batch.N = recs, n
			d.b = nil
		}
		for _, m := range batch.Marks {
			if m.Pos > batch.N {
				return nil, fmt.Errorf("decode batch: a mark at %d of %d records", m.Pos, batch.N)
			}
		}
		msg = batch
	case wireCredit:
		msg = &Credit{Group: d.int(), Dest: d.int()}
	case wireEOS:
		msg = &EndOfStream{Port: d.int(), From: d.int()}
	case wireTrigger:
		msg = triggerMsg{id: d.varint()}
	case wireComplete:
		msg = completeMsg{id: d.varint()}
	default:
		return nil, fmt.Errorf("decode message: unknown kind %q", b[0])
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decode message %q: %w", b[0], err)
	}
	return msg, nil
}

// ackWire is an instance's acknowledgement of a checkpoint, sent to the coordinator's node.
type ackWire struct {
	id       int64
	identity string
	state    []byte
	finished bool
	err      string
}

func encodeAck(a ackWire) *wrapperspb.BytesValue {
	out := binary.AppendVarint([]byte{wireAck}, a.id)
	out = appendBytes(out, []byte(a.identity))
	out = appendBytes(out, a.state)
	fin := byte(0)
	if a.finished {
		fin = 1
	}
	out = append(out, fin)
	out = appendBytes(out, []byte(a.err))
	return &wrapperspb.BytesValue{Value: out}
}

// decodeControlMessage decodes what nodes send to each other's job control actor: acks,
// the end of the job, a failure.
func decodeControlMessage(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, errors.New("decode control message: empty")
	}
	d := wireReader{b: b[1:]}
	var msg any
	switch b[0] {
	case wireAck:
		a := ackWire{id: d.varint(), identity: string(d.bytes())}
		if st := d.bytes(); len(st) > 0 {
			a.state = append([]byte(nil), st...)
		}
		a.finished = d.byte() == 1
		a.err = string(d.bytes())
		msg = a
	case wireDone:
		msg = doneWire{}
	case wireReady:
		msg = readyWire{node: string(d.bytes())}
	case wireGo:
		msg = goWire{}
	case wireHandoff:
		msg = handoffWire{}
	case wireStop:
		msg = stopWire{}
	case wireFail:
		msg = failWire{reason: string(d.bytes())}
	default:
		return nil, fmt.Errorf("decode control message: unknown kind %q", b[0])
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decode control message %q: %w", b[0], err)
	}
	return msg, nil
}

// doneWire says the job has ended everywhere: its final checkpoint is saved.
type doneWire struct{}

// readyWire says a node has spawned its actors; goWire, from the coordinator, that all have.
type (
	readyWire struct{ node string }
	goWire    struct{}
)

// handoffWire asks the coordinator to end the run at a checkpoint; stopWire, from the
// coordinator, says the checkpoint is complete and the run stops.
type (
	handoffWire struct{}
	stopWire    struct{}
)

func encodeReady(node string) *wrapperspb.BytesValue {
	return &wrapperspb.BytesValue{Value: appendBytes([]byte{wireReady}, []byte(node))}
}

// failWire says the job failed on another node.
type failWire struct{ reason string }

func encodeDone() *wrapperspb.BytesValue { return &wrapperspb.BytesValue{Value: []byte{wireDone}} }

func encodeFail(reason string) *wrapperspb.BytesValue {
	return &wrapperspb.BytesValue{Value: appendBytes([]byte{wireFail}, []byte(reason))}
}

func appendBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

func appendPID(dst []byte, pid *pa.PID) []byte {
	if pid == nil {
		return appendBytes(appendBytes(dst, nil), nil)
	}
	return appendBytes(appendBytes(dst, []byte(pid.Address)), []byte(pid.Id))
}

// wireReader reads what the append functions wrote; the first error sticks, and reads
// after it return zero values.
type wireReader struct {
	b   []byte
	err error
}

func (d *wireReader) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s with %d bytes left", what, len(d.b))
	}
	d.b = nil
}

func (d *wireReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *wireReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a uvarint that must fit an int of 31 bits (ports, indexes).
func (d *wireReader) int() int {
	v := d.uvarint()
	if v > 1<<31-1 {
		d.fail("index")
		return 0
	}
	return int(v)
}

// count reads a length of things that take at least min bytes each, and checks that the
// input can hold that many: a bad length must not make anyone allocate without bound.
func (d *wireReader) count(min int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/min) {
		d.fail("count")
		return 0
	}
	return int(v)
}

func (d *wireReader) byte() byte {
	if len(d.b) == 0 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *wireReader) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *wireReader) pid() *pa.PID {
	addr, id := d.bytes(), d.bytes()
	if d.err != nil || len(id) == 0 {
		return nil
	}
	return pa.NewPID(string(addr), string(id))
}

func (d *wireReader) done() error {
	if d.err == nil && len(d.b) > 0 {
		return fmt.Errorf("%d bytes left over", len(d.b))
	}
	return d.err
}
