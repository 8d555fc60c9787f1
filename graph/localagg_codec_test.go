package graph

import (
	"testing"

	"github.com/eddyflow/eddy/stream"
	"github.com/eddyflow/eddy/stream/agg"
)

func meanPartials() partialCodec[string, int64, agg.Mean] {
	keys, _ := stream.CodecFor[string]()
	values, _ := stream.CodecFor[int64]()
	return partialCodec[string, int64, agg.Mean]{keys: keys, values: values}
}

// TestPartialCodecRoundTrip checks that partials and retractions cross nodes unchanged.
func TestPartialCodecRoundTrip(t *testing.T) {
	c := meanPartials()
	for _, p := range []partial[string, int64, agg.Mean]{
		{Key: "a", Acc: agg.Mean{Sum: 12.5, Count: 3}},
		{Key: "", Acc: agg.Mean{}},
		{Key: "retracted", Value: -7, Raw: true},
	} {
		b, err := c.Append([]byte("prefix"), p)
		if err != nil {
			t.Fatalf("encode %+v: %v", p, err)
		}
		got, err := c.Decode(b[len("prefix"):])
		if err != nil {
			t.Fatalf("decode %+v: %v", p, err)
		}
		if got != p {
			t.Errorf("round trip of %+v gave %+v", p, got)
		}
	}
}

// FuzzPartialCodec feeds the decoder arbitrary bytes: an error or a partial that encodes
// again, never a panic.
func FuzzPartialCodec(f *testing.F) {
	c := meanPartials()
	for _, p := range []partial[string, int64, agg.Mean]{{Key: "k", Acc: agg.Mean{Sum: 1, Count: 1}}, {Key: "r", Value: 3, Raw: true}} {
		b, _ := c.Append(nil, p)
		f.Add(b)
	}
	f.Add([]byte{2})
	f.Add([]byte{0, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := c.Decode(b)
		if err != nil {
			return
		}
		if _, err := c.Append(nil, p); err != nil {
			t.Errorf("decoded %+v does not encode: %v", p, err)
		}
	})
}
