package infer

import (
	"github.com/eddyflow/eddy/graph"
)

// Rule is one rule of a rule set: records for which When holds go to the rule's stream.
type Rule[T any] struct {
	// Name names the rule's output stage.
	Name string
	When func(T) bool
}

// Threshold is the rule "output[i] > min".
func Threshold[T any](name string, i int, min float32) Rule[Scored[T]] {
	return Rule[Scored[T]]{Name: name, When: func(s Scored[T]) bool { return i < len(s.Output) && s.Output[i] > min }}
}

// Route sends each record of s to the stream of the first rule that holds for it, or to
// rest when none does (a rule set after inference: score > 0.8 → alerts, > 0.5 → review).
// A rule that panics costs its record a dead letter.
func Route[T any](s graph.Stream[T], rules ...Rule[T]) (matched []graph.Stream[T], rest graph.Stream[T]) {
	outs := graph.Partition(s, len(rules)+1, func(v T) int {
		for i, r := range rules {
			if r.When(v) {
				return i
			}
		}
		return len(rules)
	}, graph.Name("rules"))
	for i, r := range rules {
		name := r.Name
		if name == "" {
			name = "rule"
		}
		matched = append(matched, graph.Map(outs[i], func(v T) T { return v }, graph.Name(name)))
	}
	return matched, outs[len(rules)]
}
