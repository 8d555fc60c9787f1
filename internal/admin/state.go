package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// StateQuery is what /state/{stage} needs, when the source implements it.
type StateQuery interface {
	// QueryState answers /state/{stage}?key=K: the state stage holds for req.Key.
	QueryState(ctx context.Context, stage string, req StateRequest) (StateView, error)
	// ScanState answers /state/{stage}?prefix=P&from=A&to=B&limit=N: the keys of stage in
	// the range, ordered by their bytes.
	ScanState(ctx context.Context, stage string, req StateRequest) (ScanView, error)
}

// LocalState is what a cluster node asks of its run (a *graph.Job) to answer and route
// state queries: the queries themselves, for the key groups that run here, and where a key
// belongs.
type LocalState interface {
	StateQuery
	// KeyGroupOf returns the key group of key (its text) in stage, and how many there are.
	KeyGroupOf(stage, key string) (keyGroup, keyGroups int, err error)
	// CheckScan returns the error a scan of stage with req's bounds would return, without
	// reading state.
	CheckScan(stage string, req StateRequest) error
}

// JobState returns the state queries of job (a *graph.Job), nil for anything else. Package
// graph sets it when it is initialised (the cluster package reaches a run's state so,
// without graph exporting it).
var JobState func(job any) LocalState

// The errors a StateQuery wraps to choose the HTTP status: ErrNotFound 404, ErrBadRequest
// 400, a *StatusError its own; anything else 503 (the job is starting, restarting, or a
// node is unreachable: try again).
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
)

// StatusError is an answer of another node, passed on with its status.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// StateRequest is the query string of GET /state/{stage}.
type StateRequest struct {
	// Key is the key of a point query (?key=K), as text: a string key as it is, a number
	// in decimal, another type as JSON (or its codec's text). HasKey says it was given.
	Key    string
	HasKey bool
	// From, To and Prefix bound a scan (?from=, ?to=, ?prefix=; "" leaves a side open):
	// keys from From (inclusive) to To (exclusive), written as Key is, whose bytes start
	// with Prefix.
	From, To, Prefix string
	// Limit is the most entries a scan returns (?limit=; 0: the default, 100).
	Limit int
	// Epoch, set by the cluster node that forwards a request (?epoch=), is the placement
	// epoch it routed under: the node asked answers for its own key groups only, under that
	// epoch, and forwards nothing.
	Epoch string
}

// Query returns the request as a query string, for forwarding it.
func (r StateRequest) Query() url.Values {
	v := url.Values{}
	if r.HasKey {
		v.Set("key", r.Key)
	}
	for name, s := range map[string]string{"from": r.From, "to": r.To, "prefix": r.Prefix, "epoch": r.Epoch} {
		if s != "" {
			v.Set(name, s)
		}
	}
	if r.Limit != 0 {
		v.Set("limit", strconv.Itoa(r.Limit))
	}
	return v
}

// AsOf is what an answer reflects: every record the key groups processed, which includes
// everything before checkpoint Checkpoint's barrier (the newest they know complete; 0:
// none), up to input watermark Watermark (Unix ms) when HasWatermark. A scan reports the
// lowest over the key groups it read.
type AsOf struct {
	Checkpoint   int64 `json:"checkpoint"`
	Watermark    int64 `json:"watermark"`
	HasWatermark bool  `json:"has_watermark"`
}

// Lower returns what a and b read together reflect: the lower checkpoint and watermark.
func (a AsOf) Lower(b AsOf) AsOf {
	out := AsOf{Checkpoint: min(a.Checkpoint, b.Checkpoint), HasWatermark: a.HasWatermark && b.HasWatermark}
	if out.HasWatermark {
		out.Watermark = min(a.Watermark, b.Watermark)
	}
	return out
}

// StateView is the JSON of /state/{stage}?key=K:
//
//	{"stage": "counts", "key": "user-7", "key_group": 93, "value": 42,
//	 "checkpoint": 12, "watermark": 1767225600000, "has_watermark": true, "node": "n2"}
//
// value is the state as JSON (an Aggregate's accumulator: a Count's count); node, on a
// cluster, is the node that owns the key and answered.
type StateView struct {
	Stage    string          `json:"stage"`
	Key      string          `json:"key"`
	KeyGroup int             `json:"key_group"`
	Value    json.RawMessage `json:"value"`
	AsOf
	Node string `json:"node,omitempty"`
}

// ScanView is the JSON of a scan, /state/{stage}?prefix=user-&limit=2:
//
//	{"stage": "counts", "entries": [
//	   {"key": "user-1", "key_bytes": "dXNlci0x", "value": 3},
//	   {"key": "user-10", "key_bytes": "dXNlci0xMA==", "value": 1}],
//	 "more": true, "key_groups": [0, 1, …, 127],
//	 "checkpoint": 12, "watermark": 1767225600000, "has_watermark": true,
//	 "nodes": ["n1", "n2", "n3"]}
//
// entries are ordered by key_bytes (the key as the stage's key codec writes it, base64);
// more says the range holds more keys; key_groups are those read (all of them: a scan that
// cannot read every key group fails with 503); nodes, on a cluster, the nodes that answered.
type ScanView struct {
	Stage     string      `json:"stage"`
	Entries   []ScanEntry `json:"entries"`
	More      bool        `json:"more"`
	KeyGroups []int       `json:"key_groups"`
	AsOf
	Nodes []string `json:"nodes,omitempty"`
}

// ScanEntry is one key of a scan: the key as JSON, its bytes, its state as JSON.
type ScanEntry struct {
	Key      json.RawMessage `json:"key"`
	KeyBytes []byte          `json:"key_bytes"`
	Value    json.RawMessage `json:"value"`
}

// MergeScans merges the scans of several nodes (each over its own key groups) into one:
// entries ordered by key bytes, the first limit of them, key groups and nodes together,
// the lowest AsOf.
func MergeScans(stage string, parts []ScanView, limit int) ScanView {
	out := ScanView{Stage: stage, Entries: []ScanEntry{}, KeyGroups: []int{}}
	for i, p := range parts {
		out.Entries = append(out.Entries, p.Entries...)
		out.KeyGroups = append(out.KeyGroups, p.KeyGroups...)
		out.Nodes = append(out.Nodes, p.Nodes...)
		out.More = out.More || p.More
		if i == 0 {
			out.AsOf = p.AsOf
		} else {
			out.AsOf = out.AsOf.Lower(p.AsOf)
		}
	}
	slices.SortFunc(out.Entries, func(a, b ScanEntry) int { return bytes.Compare(a.KeyBytes, b.KeyBytes) })
	if limit > 0 && len(out.Entries) > limit {
		out.Entries = out.Entries[:limit]
		out.More = true
	}
	slices.Sort(out.KeyGroups)
	slices.Sort(out.Nodes)
	return out
}

// DefaultScanLimit is how many entries a scan without ?limit= returns (graph's).
const DefaultScanLimit = 100

// stateTimeout bounds how long a state query waits for its answer.
const stateTimeout = 5 * time.Second

// parseStateRequest reads the query string of /state/{stage}.
func parseStateRequest(q url.Values) (StateRequest, error) {
	var r StateRequest
	one := func(name string) (string, bool, error) {
		v, ok := q[name]
		if ok && len(v) != 1 {
			return "", false, fmt.Errorf("%s given %d times; at most once", name, len(v))
		}
		if !ok {
			return "", false, nil
		}
		return v[0], true, nil
	}
	var err error
	var hasFrom, hasTo, hasPrefix, hasLimit bool
	var limit string
	for _, p := range []struct {
		name string
		v    *string
		has  *bool
	}{{"key", &r.Key, &r.HasKey}, {"from", &r.From, &hasFrom}, {"to", &r.To, &hasTo},
		{"prefix", &r.Prefix, &hasPrefix}, {"limit", &limit, &hasLimit}, {"epoch", &r.Epoch, new(bool)}} {
		if *p.v, *p.has, err = one(p.name); err != nil {
			return r, err
		}
	}
	for name := range q {
		switch name {
		case "key", "from", "to", "prefix", "limit", "epoch":
		default:
			return r, fmt.Errorf("unknown parameter %q: want key, or prefix, from, to and limit", name)
		}
	}
	scan := hasFrom || hasTo || hasPrefix || hasLimit
	switch {
	case r.HasKey && scan:
		return r, errors.New("key goes alone: a point query (key) or a scan (prefix, from, to, limit), not both")
	case !r.HasKey && !scan:
		return r, errors.New("want a key (/state/{stage}?key=K) or a scan (?prefix=P, ?from=A&to=B, ?limit=N)")
	}
	if hasLimit {
		if r.Limit, err = strconv.Atoi(limit); err != nil || r.Limit < 1 {
			return r, fmt.Errorf("limit %q: want a number above 0", limit)
		}
	}
	return r, nil
}

// serveState answers GET /state/{stage}: a point query or a scan.
func serveState(q StateQuery) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := parseStateRequest(r.URL.Query())
		if err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), stateTimeout)
		defer cancel()
		stage := r.PathValue("stage")
		var v any
		if req.HasKey {
			v, err = q.QueryState(ctx, stage, req)
		} else {
			v, err = q.ScanState(ctx, stage, req)
		}
		if err != nil {
			WriteError(w, StatusOf(err), err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, v)
	}
}

// StatusOf returns the HTTP status of a state query's error.
func StatusOf(err error) int {
	var se *StatusError
	switch {
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}
