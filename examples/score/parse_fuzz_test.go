package main

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse: no line makes parse panic; a line it accepts is a JSON object whose id is a
// string and whose features are width finite numbers, and what it returns says the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","features":[1,2,3]}`,
		`{"id":"a","features":[1,2,null]}`,
		`{"id":1,"features":[1,2,3]}`,
		`{"id":"a","features":[1e39,2,3]}`,
		`{"id":"a","features":[1,2,3]} x`,
		``, `null`, `[1]`, `{"id":"\u00e9","features":[-0,0.5e-3,3]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		req, err := parse(numberedLine{n: 7, text: line}, 3)
		if err != nil {
			return
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		var obj map[string]any
		if dec.Decode(&obj) != nil {
			t.Fatalf("accepted %q, which is not a JSON object", line)
		}
		id, _ := obj["id"].(string)
		feats, _ := obj["features"].([]any)
		if id != req.ID || len(feats) != 3 || req.Line != 7 || len(req.Features) != 3 {
			t.Fatalf("accepted %q as %+v", line, req)
		}
		for i, v := range req.Features {
			n, ok := feats[i].(json.Number)
			if !ok {
				t.Fatalf("accepted %q: feature %d is %T", line, i, feats[i])
			}
			want, err := strconv.ParseFloat(string(n), 32)
			if err != nil || math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) || float32(want) != v {
				t.Fatalf("accepted %q: feature %d = %v, the line says %s", line, i, v, n)
			}
		}
	})
}
