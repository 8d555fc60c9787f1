package actortest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
)

// DefaultTimeout is how long ExpectMsg waits for a message.
const DefaultTimeout = 3 * time.Second

// Probe is an actor that records the messages it receives, for asserting on what another
// actor sends (Akka's TestProbe).
type Probe struct {
	t       testing.TB
	sys     *pa.ActorSystem
	pid     *pa.PID
	msgs    chan any
	Timeout time.Duration
}

// NewProbe spawns a probe in sys. It is stopped when the test ends.
func NewProbe(t testing.TB, sys *pa.ActorSystem) *Probe {
	t.Helper()
	p := &Probe{t: t, sys: sys, msgs: make(chan any, 1024), Timeout: DefaultTimeout}
	p.pid = sys.Root.Spawn(pa.PropsFromFunc(func(c pa.Context) {
		switch c.Message().(type) {
		case *pa.Started, *pa.Stopping, *pa.Stopped, *pa.Restarting:
			return
		}
		select {
		case p.msgs <- c.Message():
		default:
			t.Errorf("probe %s: more than %d messages not yet expected", p.pid.Id, cap(p.msgs))
		}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(p.pid).Wait() })
	return p
}

// PID returns the probe's address, to hand to the actor under test.
func (p *Probe) PID() *pa.PID { return p.pid }

// Receive returns the next message, or fails the test when none arrives within Timeout.
func (p *Probe) Receive() any {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(p.Timeout):
		p.t.Fatalf("probe %s: no message within %v", p.pid.Id, p.Timeout)
		return nil
	}
}

// ExpectMsg fails the test unless the next message equals want (reflect.DeepEqual) and
// arrives within Timeout. It returns the message.
func (p *Probe) ExpectMsg(want any) any {
	p.t.Helper()
	got := p.Receive()
	if !reflect.DeepEqual(got, want) {
		p.t.Fatalf("probe %s: got %s, want %s", p.pid.Id, show(got), show(want))
	}
	return got
}

// ExpectNoMsg fails the test if a message arrives within d. It waits d, so keep d short:
// it asserts that nothing happens, which no event can signal.
func (p *Probe) ExpectNoMsg(d time.Duration) {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		p.t.Fatalf("probe %s: got %s, want no message", p.pid.Id, show(m))
	case <-time.After(d):
	}
}

// ExpectMsgType returns the next message as a T, failing the test when it is not one.
func ExpectMsgType[T any](p *Probe) T {
	p.t.Helper()
	got := p.Receive()
	v, ok := got.(T)
	if !ok {
		p.t.Fatalf("probe %s: got %s, want a %s", p.pid.Id, show(got), reflect.TypeFor[T]())
	}
	return v
}

func show(v any) string { return fmt.Sprintf("%T %+v", v, v) }
