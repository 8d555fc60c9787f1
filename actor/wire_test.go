package actor

import (
	"reflect"
	"testing"

	pa "github.com/asynkron/protoactor-go/actor"

	"github.com/eddyflow/eddy/stream"
)

func stringCodec() RecordsCodec {
	c, _ := stream.CodecFor[string]()
	return NewRecordsCodec(c)
}

// Every message that crosses nodes decodes to what was encoded.
func TestWireRoundTrip(t *testing.T) {
	recs := []stream.Record[string]{{Value: "a", Time: 5}, {Value: "", Time: -3, Kind: stream.Retract}, {Value: "ccc", Time: 1 << 40}}
	batch := &Batch{Port: 1, Records: recs, N: 2, From: 7, Group: 3, Dest: 126, Sender: pa.NewPID("127.0.0.1:9", "job/src/1@5.0"),
		Marks: []Mark{{Pos: 0, Watermark: MinWatermark}, {Pos: 2, Watermark: 99, Barrier: 4}}}
	codecs := []RecordsCodec{nil, stringCodec()}
	wire, err := encodeBatch(batch, codecs[1])
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeInstanceMessage(wire.Value, codecs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := *batch
	want.Records = recs[:2]
	if g := got.(*Batch); !reflect.DeepEqual(*g, want) {
		t.Errorf("batch: got %+v, want %+v", *g, want)
	}
	for _, msg := range []any{&Credit{Group: 2, Dest: 9}, &EndOfStream{Port: 1, From: 300}, triggerMsg{id: 12}, completeMsg{id: FinalCheckpoint}} {
		wire, err := encodeControl(msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeInstanceMessage(wire.Value, codecs, nil)
		if err != nil || !reflect.DeepEqual(got, msg) {
			t.Errorf("%T: got %+v, %v; want %+v", msg, got, err, msg)
		}
	}
	ack := ackWire{id: 3, identity: "job/count/5", state: []byte{1, 2}, finished: true, err: "boom"}
	if got, err := decodeControlMessage(encodeAck(ack).Value); err != nil || !reflect.DeepEqual(got, ack) {
		t.Errorf("ack: got %+v, %v; want %+v", got, err, ack)
	}
	if got, err := decodeControlMessage(encodeReady("127.0.0.1:1").Value); err != nil || got != (readyWire{node: "127.0.0.1:1"}) {
		t.Errorf("ready: got %+v, %v", got, err)
	}
	if _, err := encodeControl(startMsg{}); err == nil {
		t.Error("a message that must not cross nodes was encoded")
	}
	if _, err := encodeBatch(batch, nil); err == nil {
		t.Error("a batch was encoded without a codec")
	}
}

// Bad bytes from the network are an error, never a panic or an allocation they ask for.
func FuzzDecodeInstanceMessage(f *testing.F) {
	codecs := []RecordsCodec{stringCodec()}
	b, _ := encodeBatch(&Batch{Records: []stream.Record[string]{{Value: "x", Time: 1}}, N: 1, Marks: []Mark{{Pos: 1, Watermark: 1}},
		Sender: pa.NewPID("a", "b")}, codecs[0])
	f.Add(b.Value)
	c, _ := encodeControl(&Credit{Group: 1, Dest: 2})
	f.Add(c.Value)
	f.Add(encodeAck(ackWire{id: 1, identity: "x", state: []byte{1}}).Value)
	f.Fuzz(func(t *testing.T, data []byte) {
		if msg, err := decodeInstanceMessage(data, codecs, nil); err == nil {
			if b, ok := msg.(*Batch); ok {
				recs, _ := b.Records.([]stream.Record[string])
				if b.N != len(recs) {
					t.Fatalf("batch of %d records says %d", len(recs), b.N)
				}
			}
		}
		_, _ = decodeControlMessage(data)
	})
}

// A batch from another node decodes into a slice of an earlier one when given it.
func TestDecodeRecordsReuses(t *testing.T) {
	c := stringCodec()
	b, err := c.AppendRecords(nil, []stream.Record[string]{{Value: "a"}, {Value: "b"}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	old := make([]stream.Record[string], 5, 8)
	got, n, err := c.DecodeRecords(old, b)
	if err != nil || n != 2 {
		t.Fatal(n, err)
	}
	recs := got.([]stream.Record[string])
	if &recs[0] != &old[0] || recs[1].Value != "b" || len(recs) != 2 {
		t.Errorf("decoded %v into a new slice, or wrongly", recs)
	}
}
