package graph

import (
	"strconv"
	"testing"

	"github.com/eddyflow/eddy/internal/admin"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
)

type point struct{ X, Y int }

func TestKeyParser(t *testing.T) {
	strCodec, _ := stream.CodecFor[string]()
	i64Codec, _ := stream.CodecFor[int64]()
	parseString := keyParser(strCodec, operator.KeyHasher(strCodec))
	parseInt := keyParser(i64Codec, operator.KeyHasher(i64Codec))
	parsePoint := keyParser[point](nil, func(point) uint64 { return 1 })
	for _, tc := range []struct {
		name  string
		parse func(string) (any, uint64, error)
		text  string
		want  any
		fails bool
	}{
		{"string", parseString, "user-00", "user-00", false},
		{"empty string", parseString, "", "", false},
		{"int64", parseInt, "-42", int64(-42), false},
		{"int64 not a number", parseInt, "forty", nil, true},
		{"int64 too big", parseInt, "99999999999999999999", nil, true},
		{"struct as JSON", parsePoint, `{"X":1,"Y":2}`, point{1, 2}, false},
		{"struct, bad JSON", parsePoint, `{"X":`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, _, err := tc.parse(tc.text)
			if (err != nil) != tc.fails || (!tc.fails && k != tc.want) {
				t.Errorf("parse %q: %v, %v; want %v (fails %v)", tc.text, k, err, tc.want, tc.fails)
			}
		})
	}
	// The hash is the one KeyBy routes with: the key's key group is the same.
	_, h, _ := parseInt("7")
	if want := operator.KeyHasher(i64Codec)(7); h != want {
		t.Errorf("hash %d, want %d", h, want)
	}
}

// Any text gives a key or an error, never a panic.
func FuzzKeyParser(f *testing.F) {
	i64Codec, _ := stream.CodecFor[int64]()
	parsers := []func(string) (any, uint64, error){
		keyParser(i64Codec, operator.KeyHasher(i64Codec)),
		keyParser[point](nil, func(point) uint64 { return 0 }),
		keyParser[uint32](nil, func(v uint32) uint64 { return uint64(v) }),
	}
	for _, s := range []string{"1", "-1", strconv.FormatInt(1<<62, 10), `{"X":1}`, "", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, p := range parsers {
			_, _, _ = p(text)
		}
	})
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ p, want string }{
		{"user-", "user."},
		{"a\xff", "b"},
		{"\xff\xff", ""},
		{"", ""},
	} {
		if got := string(prefixEnd([]byte(tc.p))); got != tc.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// The admin endpoint's default limit (a cluster node merges with it) is Scan's.
func TestScanLimitsMatchAdmin(t *testing.T) {
	if admin.DefaultScanLimit != DefaultScanLimit {
		t.Errorf("admin.DefaultScanLimit %d, graph.DefaultScanLimit %d", admin.DefaultScanLimit, DefaultScanLimit)
	}
}
