package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
)

// The errors of state queries (Query and Scan). The admin endpoint answers 404 for
// ErrUnknownStage and ErrNoState, 400 for ErrNotKeyed, ErrBadKey, ErrNotScannable and
// ErrBadScan.
var (
	// ErrUnknownStage says a state query named no stage of the job.
	ErrUnknownStage = errors.New("no stage of that name")
	// ErrNotKeyed says a state query named a stage that keeps no keyed state (a source, a
	// map, a sink).
	ErrNotKeyed = errors.New("the stage keeps no keyed state")
	// ErrBadKey says a key is neither of the stage's key type nor text that parses as one.
	ErrBadKey = errors.New("not a key of the stage")
	// ErrNoState says a keyed stage holds no state for the key asked about.
	ErrNoState = actor.ErrNoState
	// ErrNotScannable says a scan named a keyed stage whose state cannot be listed by key:
	// windows and joins (Aggregate, Count, Reduce, Process and ToTable stages can).
	ErrNotScannable = errors.New("the stage's state cannot be scanned")
	// ErrBadScan says a scan's bounds or limit are wrong.
	ErrBadScan = errors.New("bad scan")
	// ErrNotHere says the key group asked about does not run in this process: on a
	// cluster another node owns it (cluster nodes route queries there), or the job is
	// between two runs.
	ErrNotHere = actor.ErrNotHere
)

// scanFanOut is how many key groups a scan asks at a time.
const scanFanOut = 64

// Scan limits: a scan returns at most Limit entries, DefaultScanLimit when it is 0, and no
// scan may ask for more than MaxScanLimit.
const (
	DefaultScanLimit = 100
	MaxScanLimit     = 10_000
)

// AsOf says what an answer reflects: the state after every record processed so far, which
// includes everything before the barrier of checkpoint Checkpoint (the newest the key
// group knows complete; 0: none), at input watermark Watermark (Unix ms, when
// HasWatermark; actor.MaxWatermark once the inputs ended). A scan reports the lowest of
// the key groups it read.
type AsOf = actor.AsOf

// Entry is one key's state.
type Entry struct {
	// Key is the key as JSON: a string key as a JSON string, a number as a number.
	Key json.RawMessage `json:"key"`
	// KeyBytes is the key as the stage's key codec writes it (base64 in JSON): scans are
	// ordered by these bytes, and Badger keeps the state by them.
	KeyBytes []byte `json:"key_bytes"`
	// Value is the state the stage holds for the key, as JSON: an Aggregate's accumulator
	// (a Count's count, a Reduce's value), a Process stage's (or a table's) named states
	// ({"row": …} for ToTable), a window stage's open windows.
	Value json.RawMessage `json:"value"`
}

// QueryResult is the answer of Query: one key's state, and what it reflects.
type QueryResult struct {
	Stage    string `json:"stage"`
	KeyGroup int    `json:"key_group"`
	Entry
	AsOf
}

// Decode decodes the value into v (a pointer), as encoding/json does.
func (r QueryResult) Decode(v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("decode the state of %s in %q: %w", r.Key, r.Stage, err)
	}
	return nil
}

// Scan asks for the keys of a keyed stage in a range, in the order of their bytes as the
// stage's key codec writes them: bytewise, so strings sort as Go compares them, while the
// built-in codec of integers (little-endian) does not sort them by value (give KeyBy a
// big-endian WithKeyCodec for numeric ranges). From, To and Prefix all apply.
type Scan struct {
	// From is the first key (inclusive), To the key the range ends before (exclusive); nil
	// leaves that side open. Each is a key of the stage's type, or its text as Query takes
	// it.
	From, To any
	// Prefix, when not "", keeps the keys whose bytes start with it: for string keys, the
	// strings that start with it.
	Prefix string
	// Limit is the most entries returned: 0 means DefaultScanLimit; above MaxScanLimit is
	// ErrBadScan.
	Limit int
}

// ScanResult is the answer of Scan.
type ScanResult struct {
	Stage string `json:"stage"`
	// Entries are the keys in the range, ordered by KeyBytes, at most Limit of them.
	Entries []Entry `json:"entries"`
	// More says the range holds more keys than Entries.
	More bool `json:"more"`
	// KeyGroups are the key groups read, ascending: all of the stage's in one process, a
	// cluster node's own on a node.
	KeyGroups []int `json:"key_groups"`
	AsOf
}

// Query returns the state the keyed stage named stage holds now for key, as JSON, and
// what it reflects. key is a value of the stage's key type, or its text: a string key as
// it is, a number in decimal, another type as its codec's bytes (JSON without one). The
// key group of the key answers between two messages, in its own goroutine, so the answer
// is its state at one moment. The job must be running; on a cluster, the key group must
// run here (ErrNotHere; cluster nodes route a query to the key's owner).
//
// The value comes as JSON because it crosses goroutines (the state must not be shared)
// and nodes: Decode reads it into a typed value.
func (j *Job) Query(ctx context.Context, stage string, key any) (QueryResult, error) {
	q, err := j.keyedStage(stage)
	if err != nil {
		return QueryResult{}, fmt.Errorf("query %q: %w", stage, err)
	}
	k, hash, err := q.keyOf.of(key)
	if err != nil {
		return QueryResult{}, fmt.Errorf("query %q: key %v: %w: %w", stage, key, ErrBadKey, err)
	}
	kb, err := q.keyOf.bytes(k)
	if err != nil {
		return QueryResult{}, fmt.Errorf("query %q: encode key %v: %w: %w", stage, key, ErrBadKey, err)
	}
	kj, err := json.Marshal(k)
	if err != nil {
		return QueryResult{}, fmt.Errorf("query %q: key %v as JSON: %w: %w", stage, key, ErrBadKey, err)
	}
	kg := operator.KeyGroup(hash, q.instances)
	v, at, err := j.aj.Load().Query(ctx, stage, kg, func(t actor.Task) (any, error) {
		state, found, err := lookupState(unwrapTask(t), k)
		if err != nil || !found {
			return nil, errors.Join(err, ErrNoState)
		}
		b, err := json.Marshal(state)
		if err != nil {
			return nil, fmt.Errorf("encode the state as JSON: %w", err)
		}
		return json.RawMessage(b), nil
	})
	if err != nil {
		return QueryResult{}, fmt.Errorf("query %q for key %v: %w", stage, key, err)
	}
	return QueryResult{Stage: stage, KeyGroup: kg, Entry: Entry{Key: kj, KeyBytes: kb, Value: v.(json.RawMessage)}, AsOf: at}, nil
}

// Scan returns the keys of the keyed stage named stage in the range s, with their state,
// in the order of their bytes (see Scan), from every key group that runs in this process.
// The key groups are asked at once and each answers in its own goroutine, with at most
// Limit keys: with a Badger state backend it seeks to the range, in memory it lists its
// keys and sorts those in range.
func (j *Job) Scan(ctx context.Context, stage string, s Scan) (ScanResult, error) {
	q, err := j.keyedStage(stage)
	if err != nil {
		return ScanResult{}, fmt.Errorf("scan %q: %w", stage, err)
	}
	r, limit, err := q.rangeOf(s)
	if err != nil {
		return ScanResult{}, fmt.Errorf("scan %q: %w", stage, err)
	}
	// The key groups are asked at once, at most scanFanOut at a time (each answers in its
	// own goroutine); the answers are merged in key group order.
	type answer struct {
		part scanPart
		at   AsOf
		err  error
	}
	answers := make([]answer, q.instances)
	aj := j.aj.Load()
	var wg sync.WaitGroup
	slots := make(chan struct{}, scanFanOut)
	for kg := range q.instances {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			v, at, err := aj.Query(ctx, stage, kg, func(t actor.Task) (any, error) {
				return scanState(unwrapTask(t), r, limit, q.keyOf.bytes)
			})
			answers[kg] = answer{at: at, err: err}
			if err == nil {
				answers[kg].part = v.(scanPart)
			}
		}()
	}
	wg.Wait()
	out := ScanResult{Stage: stage, Entries: []Entry{}, KeyGroups: []int{}}
	for kg, a := range answers {
		if errors.Is(a.err, ErrNotHere) {
			continue
		}
		if a.err != nil {
			return ScanResult{}, fmt.Errorf("scan %q: %w", stage, a.err)
		}
		out.Entries = append(out.Entries, a.part.entries...)
		out.More = out.More || a.part.more
		out.AsOf = lowerAsOf(out.AsOf, a.at, len(out.KeyGroups) == 0)
		out.KeyGroups = append(out.KeyGroups, kg)
	}
	mergeEntries(&out.Entries, &out.More, limit)
	return out, nil
}

// mergeEntries sorts entries by KeyBytes and keeps the first limit, setting *more when it
// drops any: how the answers of several key groups become one scan's.
func mergeEntries(entries *[]Entry, more *bool, limit int) {
	slices.SortFunc(*entries, func(a, b Entry) int { return bytes.Compare(a.KeyBytes, b.KeyBytes) })
	if len(*entries) > limit {
		*entries = (*entries)[:limit]
		*more = true
	}
}

// lowerAsOf returns what two answers read together reflect (at, if first): the lower
// checkpoint and the lower watermark (none if either has none).
func lowerAsOf(acc, at AsOf, first bool) AsOf {
	if first {
		return at
	}
	acc.Checkpoint = min(acc.Checkpoint, at.Checkpoint)
	acc.Watermark = min(acc.Watermark, at.Watermark)
	acc.HasWatermark = acc.HasWatermark && at.HasWatermark
	if !acc.HasWatermark {
		acc.Watermark = 0
	}
	return acc
}

// KeyGroupOf returns the key group of key (a value of the stage's key type, or its text)
// in the keyed stage named stage, and how many the stage has: where a cluster routes a
// query.
func (j *Job) KeyGroupOf(stage string, key any) (keyGroup, keyGroups int, err error) {
	q, err := j.keyedStage(stage)
	if err != nil {
		return 0, 0, fmt.Errorf("query %q: %w", stage, err)
	}
	_, hash, err := q.keyOf.of(key)
	if err != nil {
		return 0, 0, fmt.Errorf("query %q: key %v: %w: %w", stage, key, ErrBadKey, err)
	}
	return operator.KeyGroup(hash, q.instances), q.instances, nil
}

// CheckScan returns the error Scan would return for s's bounds and limit on stage, without
// reading any state (a cluster node checks a scan so before it asks the others).
func (j *Job) CheckScan(stage string, s Scan) error {
	q, err := j.keyedStage(stage)
	if err == nil {
		_, _, err = q.rangeOf(s)
	}
	if err != nil {
		return fmt.Errorf("scan %q: %w", stage, err)
	}
	return nil
}

// keyedStage returns what a query needs of stage, or why there is none.
func (j *Job) keyedStage(stage string) (keyedQuery, error) {
	if q, ok := j.keyed[stage]; ok {
		return q, nil
	}
	for _, s := range j.desc.Stages {
		if s.Name == stage {
			return keyedQuery{}, fmt.Errorf("a %s stage: %w", s.Kind, ErrNotKeyed)
		}
	}
	return keyedQuery{}, ErrUnknownStage
}

// keyedQuery is what a state query needs of a keyed vertex.
type keyedQuery struct {
	instances int
	keyOf     *keyFuncs
}

// keyRange is a scan's range of key bytes: from inclusive, to exclusive; nil is open.
type keyRange struct{ from, to []byte }

func (r keyRange) has(kb []byte) bool {
	return (r.from == nil || bytes.Compare(kb, r.from) >= 0) && (r.to == nil || bytes.Compare(kb, r.to) < 0)
}

// rangeOf turns s into a range of key bytes and a limit.
func (q keyedQuery) rangeOf(s Scan) (keyRange, int, error) {
	var r keyRange
	limit := s.Limit
	switch {
	case limit == 0:
		limit = DefaultScanLimit
	case limit < 0 || limit > MaxScanLimit:
		return r, 0, fmt.Errorf("%w: limit %d, want 1 to %d", ErrBadScan, s.Limit, MaxScanLimit)
	}
	bound := func(name string, key any) ([]byte, error) {
		if key == nil {
			return nil, nil
		}
		k, _, err := q.keyOf.of(key)
		if err == nil {
			var b []byte
			if b, err = q.keyOf.bytes(k); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("%w: %s %v: %w: %w", ErrBadScan, name, key, ErrBadKey, err)
	}
	var err error
	if r.from, err = bound("from", s.From); err != nil {
		return r, 0, err
	}
	if r.to, err = bound("to", s.To); err != nil {
		return r, 0, err
	}
	if s.Prefix != "" {
		p := []byte(s.Prefix)
		if r.from == nil || bytes.Compare(p, r.from) > 0 {
			r.from = p
		}
		if end := prefixEnd(p); end != nil && (r.to == nil || bytes.Compare(end, r.to) < 0) {
			r.to = end
		}
	}
	if r.from == nil {
		r.from = []byte{} // seek from the first key
	}
	return r, limit, nil
}

// prefixEnd returns the first byte string after every string that starts with p, nil when
// there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// keyFuncs are a keyed stage's key functions, without its type parameter.
type keyFuncs struct {
	// of returns the key that key (a K, or its text) is, and its hash.
	of func(key any) (any, uint64, error)
	// bytes writes a K as the stage's state keeps it (keyCodecOf).
	bytes func(k any) ([]byte, error)
}

func keyFuncsOf[K comparable](codec stream.Codec[K], hash func(K) uint64) *keyFuncs {
	parse := keyParser(codec, hash)
	enc := keyCodecOf(codec)
	return &keyFuncs{
		of: func(key any) (any, uint64, error) {
			switch k := key.(type) {
			case K:
				return k, hash(k), nil
			case string:
				return parse(k)
			}
			return nil, 0, fmt.Errorf("a %T, not a %s or its text", key, typeName[K]())
		},
		bytes: func(k any) ([]byte, error) { return enc.Append(nil, k.(K)) },
	}
}

// keyParser returns the parser of keys of type K from text, and their hash.
func keyParser[K comparable](codec stream.Codec[K], hash func(K) uint64) func(string) (any, uint64, error) {
	return func(text string) (any, uint64, error) {
		var k K
		var err error
		switch p := any(&k).(type) {
		case *string:
			*p = text
		case *int:
			*p, err = strconv.Atoi(text)
		case *int64:
			*p, err = strconv.ParseInt(text, 10, 64)
		case *int32:
			var v int64
			v, err = strconv.ParseInt(text, 10, 32)
			*p = int32(v)
		case *uint64:
			*p, err = strconv.ParseUint(text, 10, 64)
		case *uint32:
			var v uint64
			v, err = strconv.ParseUint(text, 10, 32)
			*p = uint32(v)
		default:
			if codec != nil {
				k, err = codec.Decode([]byte(text))
			} else {
				err = json.Unmarshal([]byte(text), &k)
			}
		}
		if err != nil {
			return nil, 0, err
		}
		return k, hash(k), nil
	}
}
