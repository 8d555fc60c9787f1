package admin

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseStateRequest(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  StateRequest
		err   string
	}{
		{"key=user-1", StateRequest{Key: "user-1", HasKey: true}, ""},
		{"key=", StateRequest{HasKey: true}, ""},
		{"prefix=user-&limit=10", StateRequest{Prefix: "user-", Limit: 10}, ""},
		{"from=a&to=b", StateRequest{From: "a", To: "b"}, ""},
		{"limit=5&epoch=00000000000000ff", StateRequest{Limit: 5, Epoch: "00000000000000ff"}, ""},
		{"", StateRequest{}, "want a key"},
		{"epoch=1", StateRequest{}, "want a key"},
		{"key=a&key=b", StateRequest{}, "key given 2 times"},
		{"key=a&prefix=b", StateRequest{}, "key goes alone"},
		{"limit=0", StateRequest{}, "want a number above 0"},
		{"limit=ten", StateRequest{}, "want a number above 0"},
		{"limit=99999999999999999999", StateRequest{}, "want a number above 0"},
		{"keys=a", StateRequest{}, `unknown parameter "keys"`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			got, err := parseStateRequest(q)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%+v, %v; want %+v", got, err, tc.want)
			}
			// Forwarded, the request reads back the same.
			if back, err := parseStateRequest(got.Query()); err != nil || back != got {
				t.Errorf("forwarded as %q: %+v, %v", got.Query().Encode(), back, err)
			}
		})
	}
}

// Any query string parses to a request or an error, never a panic.
func FuzzParseStateRequest(f *testing.F) {
	for _, s := range []string{"key=a", "prefix=a&limit=3", "from=%ff&to=", "limit=-1", "key=a&key=b", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		r, err := parseStateRequest(q)
		if err == nil && r.HasKey && (r.Limit != 0 || r.From != "" || r.To != "" || r.Prefix != "") {
			t.Errorf("%q: a point query with scan bounds: %+v", s, r)
		}
	})
}

func TestMergeScans(t *testing.T) {
	entry := func(k string) ScanEntry {
		return ScanEntry{Key: json.RawMessage(`"` + k + `"`), KeyBytes: []byte(k), Value: json.RawMessage("1")}
	}
	a := ScanView{Entries: []ScanEntry{entry("a"), entry("c")}, KeyGroups: []int{0, 2}, Nodes: []string{"n2"},
		AsOf: AsOf{Checkpoint: 5, Watermark: 100, HasWatermark: true}}
	b := ScanView{Entries: []ScanEntry{entry("b"), entry("d")}, KeyGroups: []int{1, 3}, Nodes: []string{"n1"},
		AsOf: AsOf{Checkpoint: 4, Watermark: 200, HasWatermark: true}}
	c := ScanView{Entries: []ScanEntry{}, KeyGroups: []int{4}, Nodes: []string{"n3"}, AsOf: AsOf{Checkpoint: 6}}
	for _, tc := range []struct {
		name  string
		parts []ScanView
		limit int
		keys  string
		more  bool
		asOf  AsOf
	}{
		{"two nodes", []ScanView{a, b}, 10, "abcd", false, AsOf{Checkpoint: 4, Watermark: 100, HasWatermark: true}},
		{"cut at the limit", []ScanView{b, a}, 3, "abc", true, AsOf{Checkpoint: 4, Watermark: 100, HasWatermark: true}},
		{"a node without a watermark", []ScanView{a, c}, 10, "ac", false, AsOf{Checkpoint: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := MergeScans("s", tc.parts, tc.limit)
			var keys string
			for _, e := range v.Entries {
				keys += string(e.KeyBytes)
			}
			if keys != tc.keys || v.More != tc.more || v.AsOf != tc.asOf || !slices.IsSorted(v.KeyGroups) || !slices.IsSorted(v.Nodes) {
				t.Errorf("%+v; want keys %s, more %v, %+v", v, tc.keys, tc.more, tc.asOf)
			}
		})
	}
}
