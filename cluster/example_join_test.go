package cluster_test

import (
	"context"
	"crypto/rand"
	"log"
	"time"

	"github.com/eddyflow/eddy/cluster"
)

// Joining a cluster and following its placement as members come and go, as the package's
// doc shows. (Compiled, not run: it needs a second machine at 10.0.0.2.)
func ExampleJoin() {
	ctx := context.Background()
	key := make([]byte, 32) // the same on every node
	if _, err := rand.Read(key); err != nil {
		log.Fatal(err)
	}
	m, err := cluster.Join(ctx, cluster.Config{
		NodeID:   "node-1",
		BindAddr: "10.0.0.1:7946",
		Seeds:    []string{"10.0.0.2:7946"},
		Key:      key,
		Meta:     cluster.Meta{RemoteAddr: "10.0.0.1:8090"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Leave(5 * time.Second)
	changes := m.Changes()
	for {
		var ids []string
		for _, mb := range m.Members() {
			ids = append(ids, mb.NodeID)
		}
		p, err := cluster.NewPlacement("node-1", ids, cluster.Job("orders", 128))
		if err != nil {
			log.Fatal(err)
		}
		_ = p // hand p to the runtime: p.Node(id) is "" for the identities this node runs
		if _, ok := <-changes; !ok {
			break // closed: the node left
		}
	}
}
