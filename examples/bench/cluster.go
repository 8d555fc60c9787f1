package main

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
)

// clusterOptions starts nodes in-process nodes (none for 1) and returns the job options of
// each: its placement over all of them and its part of the run. The returned function
// stops them.
func clusterOptions(nodes int, job string, logger *slog.Logger) ([][]graph.JobOption, func(), error) {
	if nodes == 1 {
		return [][]graph.JobOption{nil}, func() {}, nil
	}
	var transports []*cluster.Transport
	stop := func() {
		for _, tr := range transports {
			tr.Stop()
		}
	}
	ids := make([]string, nodes)
	addrs := map[string]string{}
	for i := range nodes {
		tr, err := cluster.StartTransport("127.0.0.1:0", nil, nil, logger)
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("start node %d: %w", i, err)
		}
		transports = append(transports, tr)
		ids[i] = "node-" + strconv.Itoa(i)
		addrs[ids[i]] = tr.System.Address()
	}
	var out [][]graph.JobOption
	for i, tr := range transports {
		p, err := cluster.NewPlacement(ids[i], ids, cluster.Job(job, 128))
		if err != nil {
			stop()
			return nil, nil, err
		}
		option, _ := cluster.RunOn(tr.System, p, job, addrs)
		out = append(out, []graph.JobOption{option})
	}
	return out, stop, nil
}
