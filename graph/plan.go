package graph

import (
	"errors"
	"slices"
)

// Plan returns the plan Build would make of g with opts (Job.Describe's), without making a
// job: it reads no checkpoint and starts nothing. The sources are split, as Build splits
// them, to count their splits, and the splits are closed again; the sinks stay open, since
// the graph may still be built. A cluster node compares the fingerprint of this plan with
// its peers' before it runs anything (cluster.Fingerprint).
func (g *Graph) Plan(opts ...JobOption) (Description, error) {
	var d Description
	g.planning = &d
	defer func() { g.planning = nil }()
	job, err := g.Build(append(slices.Clone(opts), restartFrom(nil))...)
	if err != nil {
		return Description{}, err
	}
	if job != nil {
		return Description{}, errors.New("plan: Build made a job") // cannot happen: Build stops at the plan
	}
	return d, nil
}
