package actortest

import (
	"context"
	"sync"
	"time"

	"github.com/eddyflow/eddy/stream"
)

// Gate holds a GatedSource back until the test opens it: a way to keep a job running while
// the test takes a savepoint, waits for checkpoints or makes a node leave, with no sleep in
// a user function to pace it. The zero Gate is closed and ready.
type Gate struct {
	once sync.Once
	mu   sync.Mutex
	ch   chan struct{}
}

func (g *Gate) wait() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

// Open lets the gated sources go on. It may be called more than once.
func (g *Gate) Open() { g.once.Do(func() { close(g.wait()) }) }

// IsOpen reports whether Open was called.
func (g *Gate) IsOpen() bool {
	select {
	case <-g.wait():
		return true
	default:
		return false
	}
}

// gateWait is how long a gated split waits for its gate in one Read before it returns with
// nothing, so that its actor stays responsive (to barriers, to cancellation).
const gateWait = time.Millisecond

// GatedSource wraps src so that each of its splits hands out at most after records, then
// nothing until g is open; the splits stay responsive while they wait (a Read returns no
// records, as a split with no data ready may), so checkpoint barriers and cancellation go
// through. Splits of src that rewind still rewind (their offsets are src's); the count
// towards after starts again with each split instance, a restored one included.
func GatedSource[T any](src stream.Source[T], after int64, g *Gate) stream.Source[T] {
	return gatedSource[T]{src: src, after: after, gate: g}
}

type gatedSource[T any] struct {
	src   stream.Source[T]
	after int64
	gate  *Gate
}

func (s gatedSource[T]) Splits(n int) ([]stream.Split[T], error) {
	inner, err := s.src.Splits(n)
	if err != nil {
		return nil, err
	}
	out := make([]stream.Split[T], len(inner))
	for i, sp := range inner {
		g := &gatedSplit[T]{inner: sp, left: s.after, gate: s.gate}
		if r, ok := sp.(rewinder); ok {
			out[i] = &gatedRewindingSplit[T]{gatedSplit: g, rewinder: r}
		} else {
			out[i] = g
		}
	}
	return out, nil
}

// rewinder is a split that can rewind (see stream.Split).
type rewinder interface {
	Offset() ([]byte, error)
	Seek(offset []byte) error
}

type gatedSplit[T any] struct {
	inner stream.Split[T]
	left  int64 // records still to hand out before the gate; < 0 once it is open
	gate  *Gate
}

func (s *gatedSplit[T]) Read(ctx context.Context, max int, out stream.Output[T]) (int, error) {
	if s.left == 0 {
		select {
		case <-s.gate.wait():
			s.left = -1
		case <-ctx.Done():
			return 0, nil
		case <-time.After(gateWait):
			return 0, nil
		}
	}
	if s.left > 0 && int64(max) > s.left {
		max = int(s.left)
	}
	n, err := s.inner.Read(ctx, max, out)
	if s.left > 0 {
		s.left -= int64(n)
	}
	return n, err
}

func (s *gatedSplit[T]) Close() error { return s.inner.Close() }

type gatedRewindingSplit[T any] struct {
	*gatedSplit[T]
	rewinder
}
