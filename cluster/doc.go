// Package cluster runs Eddy on several peers with no master: every node runs the same
// binary and the same jobs, finds the others by gossip, and computes from the member list
// it sees which node owns each key group.
//
// Membership (Join, Members) is SWIM gossip with hashicorp/memberlist. A node joins through
// any seed, publishes its admin and actor-transport addresses as metadata, and is told of
// joins, leaves and failures.
//
// The smallest use:
//
//	m, err := cluster.Join(ctx, cluster.Config{
//		NodeID:   "node-1",
//		BindAddr: "10.0.0.1:7946",
//		Seeds:    []string{"10.0.0.2:7946"},
//		Key:      key, // 32 bytes, the same on every node
//		Meta:     cluster.Meta{RemoteAddr: "10.0.0.1:8090"},
//	})
//	if err != nil { ... }
//	defer m.Leave(5 * time.Second)
//	fmt.Println(m.Members())
//
// # Membership
//
// Members wraps one memberlist instance. Leave tells the others and then stops (they drop
// the node at once); Shutdown stops without a word (they detect a failure after their
// suspicion timeout), as memberlist separates them. Changes hands out channels that are
// signalled, coalescing, on every change and closed when the node stops; the signal is
// sent from memberlist's callbacks without blocking, so no goroutine of this package runs
// beside memberlist's own. memberlist logs through the Config's slog.Logger. Metadata is
// JSON (Meta), checked at Join against memberlist's 512-byte limit. With a gossip Key,
// a node with another key or none cannot join: the seed cannot decrypt its state and Join
// returns memberlist's reason ("no installed keys could decrypt the message").
package cluster
