package kserve

import (
	"encoding/json"
	"testing"
)

// FuzzAnswerRows: no answer body makes the client panic; rows it returns have the answer's
// shape.
func FuzzAnswerRows(f *testing.F) {
	f.Add([]byte(`{"model_name":"m","outputs":[{"name":"scores","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}`), 2)
	f.Add([]byte(`{"outputs":[{"name":"scores","shape":[2,9223372036854775807],"datatype":"FP32","data":[]}]}`), 2)
	f.Add([]byte(`{"outputs":[{"shape":[1,-1],"data":[1]}]}`), 1)
	f.Add([]byte(`{"outputs":[]}`), 0)
	f.Add([]byte(`{"outputs":[{"shape":[0,3],"data":[]}]}`), 0)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n < 0 || n > 1000 {
			return
		}
		var resp InferResponse
		if json.Unmarshal(body, &resp) != nil {
			return
		}
		rows, err := answerRows(resp, "", n)
		if err != nil {
			return
		}
		if len(rows) != n {
			t.Fatalf("%d rows for %d", len(rows), n)
		}
		for _, r := range rows {
			if int64(len(r)) != resp.Outputs[0].Shape[1] {
				t.Fatalf("a row of %d values; shape %v", len(r), resp.Outputs[0].Shape)
			}
		}
	})
}
