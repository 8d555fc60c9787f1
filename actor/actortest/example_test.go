package actortest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/graph"
)

// The harness runs a keyed count on the test's goroutine: each Push is handled before it
// returns, and the state of a key can be read back. The count folds the clicks per user
// upstream first (local aggregation): ann's two arrive as one partial count when its
// mini-batch ends, here once the clock has moved past it.
func ExampleStageHarness() {
	t := &testing.T{} // in a test, the test's own *testing.T
	h := actortest.NewStageHarness[string](t)
	counts := graph.Count(graph.KeyBy(h.Input(), func(user string) string { return user }), graph.Name("clicks"))
	out := actortest.Collect(h, counts)

	h.Push("ann", 1000)
	h.Push("bob", 1500)
	h.Push("ann", 2000)
	h.Advance(time.Second)
	for _, r := range out.Records() {
		fmt.Printf("%s=%d at %d\n", r.Value.Key, r.Value.Value, r.Time)
	}
	n, _ := h.State("clicks", "ann")
	fmt.Println("state of ann:", n)
	// Output:
	// ann=2 at 2000
	// bob=1 at 1500
	// state of ann: 2
}
