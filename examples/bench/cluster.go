package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	pa "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

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
	var systems []*pa.ActorSystem
	var remotes []*remote.Remote
	stop := func() {
		for i := range remotes {
			remotes[i].Shutdown(false)
			systems[i].Shutdown()
		}
	}
	ids := make([]string, nodes)
	addrs := map[string]string{}
	for i := range nodes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("start node %d: %w", i, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		sys := pa.NewActorSystem(pa.WithLoggerFactory(func(*pa.ActorSystem) *slog.Logger { return logger }))
		r := remote.NewRemote(sys, remote.Configure("127.0.0.1", port))
		r.Start()
		systems, remotes = append(systems, sys), append(remotes, r)
		ids[i] = "node-" + strconv.Itoa(i)
		addrs[ids[i]] = sys.Address()
	}
	var out [][]graph.JobOption
	for i, sys := range systems {
		p, err := cluster.NewPlacement(ids[i], ids, cluster.Job(job, 128))
		if err != nil {
			stop()
			return nil, nil, err
		}
		option, _ := cluster.RunOn(sys, p, job, addrs)
		out = append(out, []graph.JobOption{option})
	}
	return out, stop, nil
}
