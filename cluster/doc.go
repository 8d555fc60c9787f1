// Package cluster runs Eddy on several peers with no master: every node runs the same
// binary and the same jobs, finds the others by gossip, and computes from the member list
// it sees which node owns each key group.
//
// It has these parts:
//
//   - Membership (Join, Members): SWIM gossip with hashicorp/memberlist. A node joins through
//     any seed, publishes its admin and actor-transport addresses as metadata, and is told
//     of joins, leaves and failures.
//   - Placement (NewPlacement, Placement): consistent hashing with bounded loads
//     (buraksezer/consistent), computed by every node from the member list, implementing
//     actor.Placement, with an Epoch to fence writes.
//   - Admin (AdminHandler, ServeAdmin): /members, /placement, /stages, /cluster/stages (the
//     whole cluster's, asked of every member), /state (interactive queries: a key's state
//     from its owner, scans merged from every node) and Prometheus /metrics, on
//     internal/admin's server.
//   - Nodes (StartNode, Node.Run, Node.Leave, RunOn, DirFence): a job run over the members,
//     started again from a checkpoint when they change, fenced so that two runs never both
//     commit. cmd/eddy is a node.
//   - Your graph on a cluster (RunGraph, RunConfig, Fingerprint): one call in a program's
//     main runs its graph as a node, configured by RunConfig or its flags; nodes whose
//     plans differ refuse each other. examples/clustered is one.
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
//	changes := m.Changes()
//	for {
//		var ids []string
//		for _, mb := range m.Members() {
//			ids = append(ids, mb.NodeID)
//		}
//		p, err := cluster.NewPlacement("node-1", ids, cluster.Job("orders", 128))
//		... // hand p to the runtime: p.Node(id) is "" for the identities this node runs
//		if _, ok := <-changes; !ok {
//			break // closed: the node left
//		}
//	}
//
//	h := cluster.AdminHandler(src) // src: the node's members, placement and stage stats
//	srv, err := cluster.ServeAdmin(ctx, ":9090", h) // 127.0.0.1:9090
//	defer srv.Close()
//
// # Membership
//
// Members wraps one memberlist instance. Leave tells the others and then stops (they drop
// the node at once); Shutdown stops without a word (they detect a failure after their
// suspicion timeout), as memberlist separates them. Changes hands out channels that are
// signalled, coalescing, on every change and closed when the node stops; the signal is
// sent from memberlist's callbacks without blocking, so no goroutine of this package runs
// beside memberlist's own. memberlist's Shutdown stops its listeners and waits for them, but
// not for a probe or gossip round in progress, which ends within the probe timeout (TCP
// fallback: TCPTimeout); what it logs after Shutdown is dropped. memberlist logs through the
// Config's slog.Logger. Metadata is JSON (Meta), checked at Join against memberlist's
// 512-byte limit. With a gossip Key,
// a node with another key or none cannot join: the seed cannot decrypt its state and Join
// returns memberlist's reason ("no installed keys could decrypt the message").
//
// # Placement: key groups are consistent's partitions, one to one
//
// consistent bounds loads over its partitions, not over keys: LocateKey hashes a key to
// one of PartitionCount partitions, and the partitions (not the keys) are spread so that no
// member holds more than ceil(floor(partitions/members) × Load). Hashing "job/keyGroup"
// strings into consistent's default 271 partitions would leave key groups to land on
// partitions at random, so a node's share of a job's 128 key groups would be bounded only
// in expectation (binomial, about 43 ± 5 of 128 on three nodes). Placement therefore makes
// the key groups of a job the partitions: a ring with PartitionCount = the job's key groups
// (its MaxKeyGroups; Job and DefaultKeyGroups say how many), where key group kg of job is
// partition (kg + xxhash(job)) mod keyGroups. The bound then holds for key groups exactly:
// with three nodes and Load 1.25 no node owns more than ceil(42 × 1.25) = 53 of 128.
// Rotating by a hash of the job keeps the owner a function of job and key group only (never
// of the stage, so every keyed stage of a key group, and source split i with key group i,
// lives on one node) while different jobs' key group 0 (and split 0) land on different
// nodes. A job with fewer key groups than nodes gets a ring of one partition per node at a
// load of exactly 1, of which its key groups use the first: no node owns two. A source with
// more splits than key groups places split i like key group i mod keyGroups.
//
// The hasher is xxhash. Each node has 100 points on the ring (consistent's
// ReplicationFactor; its default 20 leaves the ring lumpier, and more key groups move when
// a node joins) and Load defaults to 1.25 (Load must be above 1: at 1 the partitions may
// not fit and consistent panics). Over 500 random three-node clusters, adding a fourth
// moved 25% of 128 key groups on average (about the quarter the new node takes) and 37% at
// worst; with Load 1.1 the largest share drops from 53 to 47 and 26% move on average.
// consistent names a node's ring points "%s%d" of its name and the
// point's number, so nodes "n-1" and "n-11" would share "n-110"; ring names are node IDs
// with "/" appended, which cannot collide that way. Nodes are sorted before the ring is
// built, so the member list's order does not matter.
//
// # Epoch
//
// A Placement's Epoch is a hash of everything its owners depend on: the sorted node IDs,
// the Load, the ring's points per node and the key-group counts. Nodes that see the same
// members (and run the same configuration) compute the same epoch; any change of membership
// changes it. A counter would be ordered, but nodes cannot agree on one without a master; a
// hash they agree on from the member list alone. The runtime puts it (with the checkpoint a
// run restored) into its actor names, so that a message of an older run reaches no actor of
// a newer one. Writes are fenced by a claim, not by the epoch alone: see Fencing.
//
// # Running a job: Node
//
// A Node is one peer: its membership, its actor system with Proto.Actor remote (TLS
// optional), its admin endpoint. Node.Run runs a job over the cluster, in runs: wait until
// the member list has been still for Settle (and, the first time, has Expect members),
// place the key groups (RunOn: the actor.Placement and actor.ClusterRun of this node's
// part), build the job afresh, run it from the newest checkpoint in the shared store. When
// the list changes, every node ends its run: at a handoff checkpoint when every member of
// the run is still there (a node joined: a handoff checkpoint, so the next run replays nothing), at
// once when one is gone (a failure: the next run starts from the newest checkpoint, and
// sources rewind). Node.Leave hands off and then leaves. Each run moves only the identities
// whose owner changed; the others restart where they were. A live handoff without a restart
// is the next step.
//
// # Fencing
//
// With NodeConfig.Fence (a RunFence: persistence.FencedCheckpoints over an S3 bucket), the
// coordinator of each run (the owner of key group 0) claims a new epoch in the store by a
// conditional write, builds its part (choosing the checkpoint to restore), and tells every
// other node the epoch and that checkpoint before any of them builds or recovers anything.
// Every commit of the run (a checkpoint's completion, a sink's commit, a recovery) is a
// conditional write under that epoch, which the store refuses once a newer run has claimed:
// a paused node that comes back commits nothing and steps down. With NodeConfig.Quorum, a
// node runs the job only while it sees that many members (static quorum); the minority side
// of a partition pauses. docs/decisions-fence.md has the details.
//
// Without a Fence, the coordinator of each run claims a DirFence in the shared
// directory with a token of its own, and checks before every checkpoint it saves that the
// token is still there. A coordinator of an older run that still runs (a node cut off from
// the others) finds another token and fails its run without saving; since two-phase sinks
// commit only what a saved checkpoint completed, two runs never both commit. A shared
// directory has no compare-and-swap: a store with conditional writes closes the window of a
// few microseconds between a check and a claim.
//
// # Why actor.Placement and not Proto.Actor's cluster
//
// protoactor-go's cluster package has the seams this could plug into: ClusterProvider for
// membership and IdentityLookup for placement. Eddy implements actor.Placement directly
// instead:
//
//   - Eddy's key-group actors are not virtual actors. Proto.Actor activates a grain on the
//     first message, wherever IdentityLookup.Get decides, and may passivate it; Eddy's
//     runtime spawns every key-group and split actor of a job up front, restores its state
//     from a checkpoint, and keeps it for the life of the job.
//   - Every node must know the owner of every identity synchronously, from the member list
//     alone, on the hot path of routing a batch: IdentityLookup.Get returns a PID, possibly
//     after a spawn lock and a remote activation; Placement.Node is a table look-up.
//   - Moving state when ownership changes, checkpoints and fencing by epoch are Eddy's own
//     (actor and persistence); Proto.Actor's cluster has its own gossip of cluster state,
//     member strategies and activation storage that would run beside them and disagree.
//
// protoactor-go's remote (gRPC) stays the transport between nodes; Meta.RemoteAddr says
// where each node's is.
//
// # Your graph: RunGraph
//
// RunGraph is what a program's main calls: RunConfig (or its Flags) says where the node
// listens (-bind, -remote, -advertise), whom it joins (-join, -expect), where checkpoints go
// (-store: a directory or an object store URL) and how it is secured (-tls-*,
// -gossip-key, -insecure); newGraph builds the graph, once per run. RunGraph lives here and
// takes a *graph.Graph: package graph does not import cluster, so cluster may import graph,
// and graph.JobOption (a func(*actor.Config)) stays as it is: a user passes graph's
// options and never touches actor.Config.
//
// Before it joins, RunGraph asks the graph for its plan (graph.Graph.Plan: the vertices,
// their instances, the channels and their partitioning, without building a job or reading a
// checkpoint) and publishes its Fingerprint in the node's metadata (Meta.Plan). Members
// checks it in memberlist's merge and alive callbacks: a join with a node of another plan
// fails on both sides, the joining node gets a *PlanMismatchError naming the peer and both
// fingerprints, and gossip about such a node is ignored, so it never becomes a member and no
// run ever places key groups on it. Checking at join, not at each run, means a node that
// cannot take part never joins the member list, which would otherwise restart every node's
// run. Each run's job is checked against the published fingerprint too (a newGraph that
// builds something else fails the run).
//
// # Security defaults
//
// StartNode refuses, unless NodeConfig.Insecure is set, an actor transport beyond loopback
// without TLS and gossip beyond loopback without a Key: either would let anyone who reaches
// the port join the cluster or send actor messages. A node that binds 0.0.0.0 must say
// which address peers dial (Advertise): memberlist advertises it, and Proto.Actor's remote
// advertises it with the bound port. gRPC messages are bounded both ways
// (DefaultMaxMessageSize, 64 MiB, which says why; NodeConfig.MaxMessageSize), and the admin
// endpoint bounds what one request may ask (/placement: 8 jobs, 65,536 key groups).
//
// # Admin
//
// AdminHandler serves /members, /placement, /stages and /metrics for an AdminSource (the
// node's members, placement and stage counters). /metrics uses a prometheus.Registry of its
// own, read through a collector at each scrape, so nothing is registered globally and the
// counters are never copied. ServeAdmin listens on loopback unless told otherwise.
package cluster
