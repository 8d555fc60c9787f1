package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/operator"
	"github.com/eddyflow/eddy/stream"
)

// ErrUnknownStage says a state query named no keyed stage of the job.
var ErrUnknownStage = errors.New("no keyed stage of that name")

// ErrNoState says a keyed stage holds no state for the key asked about.
var ErrNoState = actor.ErrNoState

// State returns, as JSON, the state the keyed stage named stage holds now for the key
// written as text: a string key as it is, a number in decimal, another type as its
// codec's bytes (or JSON when it has none). It asks the instance of the key's key group,
// between two batches, so the answer is that instance's state at one moment. The job
// must be running.
func (j *Job) State(ctx context.Context, stage, text string) (json.RawMessage, error) {
	q, ok := j.keyed[stage]
	if !ok {
		return nil, fmt.Errorf("state of %q: %w", stage, ErrUnknownStage)
	}
	key, hash, err := q.keyOf(text)
	if err != nil {
		return nil, fmt.Errorf("state of %q: key %q: %w", stage, text, err)
	}
	b, err := j.aj.Load().Inspect(ctx, stage, operator.KeyGroup(hash, q.instances), key)
	if err != nil {
		return nil, fmt.Errorf("state of %q for key %q: %w", stage, text, err)
	}
	return b, nil
}

// keyedQuery is what a state query needs of a keyed vertex.
type keyedQuery struct {
	instances int
	keyOf     func(string) (any, uint64, error)
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
