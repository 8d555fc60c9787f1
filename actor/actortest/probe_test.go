package actortest_test

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/actor/actortest"
)

type ping struct {
	N       int
	ReplyTo *pa.PID
}

type pong struct{ N int }

func TestProbe(t *testing.T) {
	defer goleak.VerifyNone(t)
	sys := pa.NewActorSystem(pa.WithLoggerFactory(quietLogger))
	defer sys.Shutdown()
	// An actor that answers even pings only.
	echo := sys.Root.Spawn(pa.PropsFromFunc(func(c pa.Context) {
		if p, ok := c.Message().(*ping); ok && p.N%2 == 0 {
			c.Send(p.ReplyTo, &pong{N: p.N})
		}
	}))
	t.Run("expect", func(t *testing.T) {
		probe := actortest.NewProbe(t, sys)
		sys.Root.Send(echo, &ping{N: 2, ReplyTo: probe.PID()})
		probe.ExpectMsg(&pong{N: 2})
		sys.Root.Send(echo, &ping{N: 4, ReplyTo: probe.PID()})
		if got := actortest.ExpectMsgType[*pong](probe); got.N != 4 {
			t.Errorf("got pong %d, want 4", got.N)
		}
		sys.Root.Send(echo, &ping{N: 3, ReplyTo: probe.PID()})
		probe.ExpectNoMsg(50 * time.Millisecond)
	})
	t.Run("mismatch fails", func(t *testing.T) {
		ft := &fakeT{TB: t}
		probe := actortest.NewProbe(ft, sys)
		sys.Root.Send(echo, &ping{N: 6, ReplyTo: probe.PID()})
		func() {
			defer func() { _ = recover() }()
			probe.ExpectMsg(&pong{N: 7})
		}()
		if ft.failure == "" {
			t.Errorf("ExpectMsg accepted pong 6 for pong 7")
		}
		ft.failure = ""
		sys.Root.Send(echo, &ping{N: 8, ReplyTo: probe.PID()})
		func() {
			defer func() { _ = recover() }()
			probe.ExpectNoMsg(time.Second)
		}()
		if ft.failure == "" {
			t.Errorf("ExpectNoMsg let pong 8 pass")
		}
	})
	_ = sys.Root.StopFuture(echo).Wait()
}

// fakeT records a failure instead of ending the test, so that a test can check that the
// probe fails when it should.
type fakeT struct {
	testing.TB
	failure string
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failure = fmt.Sprintf(format, args...)
	panic(f.failure)
}

func (f *fakeT) Helper() {}

func quietLogger(*pa.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
