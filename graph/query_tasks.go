package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/stream"
)

// What the tasks of keyed stages show to state queries. Everything here runs in the
// instance's goroutine (actor.Job.Query) and hands back JSON, never the state itself.

// stateReader is a task whose state for a key is not all in memory (an aggregate with a
// state backend): Inspect alone would miss the keys written back and evicted.
type stateReader interface {
	readState(key any) (state any, found bool, err error)
}

// stateScanner is a task whose keys a scan can list.
type stateScanner interface {
	// scanState returns the keys in r (keyBytes writes a key as the stage's state keeps
	// it), ordered by their bytes, at most limit of them.
	scanState(r keyRange, limit int, keyBytes func(any) ([]byte, error)) (scanPart, error)
}

// scanPart is one key group's answer to a scan.
type scanPart struct {
	entries []Entry
	more    bool
}

// unwrapTask returns the task of a keyed stage inside the wrappers Build puts around it.
func unwrapTask(t actor.Task) actor.Task {
	for {
		switch w := t.(type) {
		case twoPhaseTask:
			t = w.Task
		case offloadTask:
			t = w.Task
		default:
			return t
		}
	}
}

// lookupState returns the state task holds for key.
func lookupState(task actor.Task, key any) (any, bool, error) {
	if r, ok := task.(stateReader); ok {
		return r.readState(key)
	}
	if in, ok := task.(actor.Inspector); ok {
		v, found := in.Inspect(key)
		return v, found, nil
	}
	return nil, false, nil
}

// scanState scans task, or says it cannot be.
func scanState(task actor.Task, r keyRange, limit int, keyBytes func(any) ([]byte, error)) (any, error) {
	s, ok := task.(stateScanner)
	if !ok {
		return nil, ErrNotScannable
	}
	return s.scanState(r, limit, keyBytes)
}

// candidate is a key in a scan's range, before the scan keeps the first limit.
type candidate struct {
	kb  []byte
	key any
	// state is the key's state, when the scan had to read it to find the key.
	state any
}

// finishScan orders cands by key bytes, keeps the first limit and encodes them, with the
// state valueOf gives each (its own state when nil).
func finishScan(cands []candidate, limit int, valueOf func(candidate) any) (scanPart, error) {
	slices.SortFunc(cands, func(a, b candidate) int { return bytes.Compare(a.kb, b.kb) })
	part := scanPart{more: len(cands) > limit}
	cands = cands[:min(len(cands), limit)]
	part.entries = make([]Entry, 0, len(cands))
	for _, c := range cands {
		v := c.state
		if valueOf != nil {
			v = valueOf(c)
		}
		kj, err := json.Marshal(c.key)
		if err != nil {
			return scanPart{}, fmt.Errorf("encode key %v as JSON: %w", c.key, err)
		}
		vj, err := json.Marshal(v)
		if err != nil {
			return scanPart{}, fmt.Errorf("encode the state of key %v as JSON: %w", c.key, err)
		}
		part.entries = append(part.entries, Entry{Key: kj, KeyBytes: c.kb, Value: vj})
	}
	return part, nil
}

// readState returns key's accumulator: from the keys of recent batches in memory, else
// from the state backend.
func (t *aggregateTask[K, T, A, R]) readState(key any) (any, bool, error) {
	k, ok := key.(K)
	if !ok {
		return nil, false, nil
	}
	if acc, ok := t.op.Get(k); ok || t.store == nil {
		return acc, ok, nil
	}
	kb, err := t.keys.Append(nil, k)
	if err != nil {
		return nil, false, fmt.Errorf("encode key %v: %w", k, err)
	}
	b, found, err := t.store.Get(kb)
	if err != nil || !found {
		return nil, false, err
	}
	acc, err := stream.DecodeState[A](b)
	if err != nil {
		return nil, false, fmt.Errorf("decode the state of key %v: %w", k, err)
	}
	return acc, true, nil
}

// scanState reads the range from the state backend, seeking to its start and stopping
// after limit+1 keys, and lays the keys of recent batches (newer than what was written
// back) over it; in memory it lists every key of the key group.
func (t *aggregateTask[K, T, A, R]) scanState(r keyRange, limit int, _ func(any) ([]byte, error)) (scanPart, error) {
	var cands []candidate
	stored := map[string]int{}
	if t.store != nil {
		err := t.store.ScanRange(r.from, r.to, func(kb, v []byte) (bool, error) {
			k, err := t.keys.Decode(kb)
			if err != nil {
				return false, fmt.Errorf("decode key %x: %w", kb, err)
			}
			acc, err := stream.DecodeState[A](v)
			if err != nil {
				return false, fmt.Errorf("decode the state of key %v: %w", k, err)
			}
			stored[string(kb)] = len(cands)
			cands = append(cands, candidate{kb: slices.Clone(kb), key: k, state: acc})
			return len(cands) <= limit, nil
		})
		if err != nil {
			return scanPart{}, fmt.Errorf("scan the state store: %w", err)
		}
	}
	var err error
	t.op.All(func(k K, acc A) bool {
		var kb []byte
		if kb, err = t.keys.Append(nil, k); err != nil {
			err = fmt.Errorf("encode key %v: %w", k, err)
			return false
		}
		if !r.has(kb) {
			return true
		}
		if i, ok := stored[string(kb)]; ok {
			cands[i].state = acc // newer than what was written back
		} else {
			cands = append(cands, candidate{kb: kb, key: k, state: acc})
		}
		return true
	})
	if err != nil {
		return scanPart{}, err
	}
	return finishScan(cands, limit, nil)
}

// scanState lists the key group's keys with state and keeps those in r; the state of a key
// is its named states, as Inspect shows them.
func (t *processTask[K, T, O]) scanState(r keyRange, limit int, keyBytes func(any) ([]byte, error)) (scanPart, error) {
	var cands []candidate
	var err error
	st := t.op.State()
	st.Keys(func(k K) bool {
		var kb []byte
		if kb, err = keyBytes(k); err != nil {
			err = fmt.Errorf("encode key %v: %w", k, err)
			return false
		}
		if r.has(kb) {
			cands = append(cands, candidate{kb: kb, key: k})
		}
		return true
	})
	if err != nil {
		return scanPart{}, err
	}
	return finishScan(cands, limit, func(c candidate) any { return st.Get(c.key.(K)) })
}
