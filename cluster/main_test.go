package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Proto.Actor's dead-letter throttle (a message to a node that already stopped, at the
	// end of a cluster run) ends on its own after its interval, which may be after the tests.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}
