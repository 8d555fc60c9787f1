// Package jobruntime lets Eddy's own packages reach the runtime job behind a graph.Job (the
// testing kit's synchronous driver, a cluster node's handoff) without graph exporting it to
// users.
package jobruntime

import "github.com/eddyflow/eddy/actor"

// Of returns the runtime job behind job (a *graph.Job), or nil for anything else. Package
// graph sets it when it is initialised.
var Of func(job any) *actor.Job
