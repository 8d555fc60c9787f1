package drift

import (
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// Watch measures value(record) of s per event-time window w against d's reference and
// emits an Event for each window that drifted. s needs timestamps and watermarks
// (graph.Timestamps). The values of a window meet in one instance (one key): a window's
// statistics need all of them.
func Watch[T any](s graph.Stream[T], value func(T) float64, w stream.WindowAssigner, d Detector) graph.Stream[Event] {
	values := graph.Map(s, value)
	all := graph.KeyBy(values, func(float64) int { return 0 })
	return graph.ProcessWindow(all, w, func(_ int, win stream.TimeWindow, xs []float64, emit func(Event)) {
		if psi, ks, drifted := d.Check(xs); drifted {
			emit(Event{Start: win.Start, End: win.End, N: len(xs), PSI: psi, KS: ks})
		}
	}, graph.Name("drift"))
}
