package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/operator"
)

const (
	// DefaultLoad is the default bounded-load factor: no node owns more than
	// ceil(keyGroups/nodes × DefaultLoad) key groups of a job (consistent's own default, and
	// the paper's). Lower is more even but moves more key groups when a node joins.
	DefaultLoad = 1.25
	// virtualNodes is how many points each node has on the hash ring (consistent's
	// ReplicationFactor). With 100, three nodes own within the bound and a fourth takes
	// close to the minimal quarter of the key groups; with consistent's default 20, more
	// moves.
	virtualNodes = 100
)

// Epoch identifies a placement: the member list and the settings it was computed from.
// Nodes that see the same members compute the same epoch, and any change of membership
// changes it. Writes to the journal and the checkpoint store carry the writer's epoch, and
// a store refuses a write whose epoch is not the one under which the writer claimed the key
// group: equality, not order, is what an epoch can be checked for.
type Epoch uint64

// String returns the epoch as 16 hex digits.
func (e Epoch) String() string { return fmt.Sprintf("%016x", uint64(e)) }

// MarshalText writes the epoch as 16 hex digits (JSON numbers lose bits above 2^53).
func (e Epoch) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText reads 16 hex digits.
func (e *Epoch) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil {
		return fmt.Errorf("parse epoch %q: %w", b, err)
	}
	*e = Epoch(v)
	return nil
}

// PlacementOption configures NewPlacement.
type PlacementOption func(*placementConfig)

// placementConfig is what NewPlacement computes with, besides the nodes.
type placementConfig struct {
	keyGroups int            // of jobs not in jobs
	jobs      map[string]int // job → key groups
	load      float64
}

// DefaultKeyGroups sets the number of key groups of jobs not named with Job (default
// operator.DefaultMaxKeyGroups, 128): the size of the table identities are placed by.
func DefaultKeyGroups(n int) PlacementOption {
	return func(c *placementConfig) { c.keyGroups = n }
}

// Job names a job the placement serves and its number of key groups (its MaxKeyGroups).
// Named jobs are listed by Jobs and shown by the admin endpoints; a job that is not named
// is placed with DefaultKeyGroups.
func Job(name string, keyGroups int) PlacementOption {
	return func(c *placementConfig) {
		if c.jobs == nil {
			c.jobs = make(map[string]int)
		}
		c.jobs[name] = keyGroups
	}
}

// Load sets the bounded-load factor, which must be above 1 (default DefaultLoad).
func Load(f float64) PlacementOption {
	return func(c *placementConfig) { c.load = f }
}

func (c *placementConfig) validate() error {
	if c.keyGroups == 0 {
		c.keyGroups = operator.DefaultMaxKeyGroups
	}
	if c.load == 0 {
		c.load = DefaultLoad
	}
	if c.keyGroups < 1 {
		return fmt.Errorf("placement: DefaultKeyGroups is %d, want at least 1", c.keyGroups)
	}
	for job, n := range c.jobs {
		if n < 1 {
			return fmt.Errorf("placement: job %q has %d key groups, want at least 1", job, n)
		}
	}
	// Above 1, every node's bound ceil(floor(partitions/nodes) × load) exceeds
	// partitions/nodes, so the partitions always fit; at 1 they may not, and consistent
	// panics.
	if !(c.load > 1) || math.IsInf(c.load, 0) {
		return fmt.Errorf("placement: Load is %v, want a finite number above 1", c.load)
	}
	return nil
}

// Placement says which node owns each identity of the cluster's jobs, as computed from one
// member list: every node that sees the same members computes the same owners. The owner
// of an identity depends on its job and index only, never on its stage, so all keyed
// stages of one key group (and source split i along with key group i) live on one node.
// A Placement does not change; a new member list makes a new one. It implements
// actor.Placement and is safe for concurrent use.
type Placement struct {
	self  string
	nodes []string // sorted, unique
	cfg   placementConfig
	epoch Epoch
	// owners maps a table size (a job's key groups) to the owner of each partition.
	owners map[int][]string
}

var _ actor.Placement = (*Placement)(nil)

// NewPlacement computes the placement of identities over nodes (node IDs, in any order;
// duplicates count once) as seen by node self, which must be one of them.
func NewPlacement(self string, nodes []string, opts ...PlacementOption) (*Placement, error) {
	var cfg placementConfig
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	if len(nodes) == 0 {
		return nil, errors.New("placement: no nodes")
	}
	if _, found := slices.BinarySearch(nodes, self); !found {
		return nil, fmt.Errorf("placement: self %q is not one of the nodes %v", self, nodes)
	}
	p := &Placement{self: self, nodes: nodes, cfg: cfg, owners: make(map[int][]string)}
	sizes := []int{cfg.keyGroups}
	for _, n := range cfg.jobs {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		if _, done := p.owners[n]; done {
			continue
		}
		owners, err := ringOwners(nodes, n, cfg.load)
		if err != nil {
			return nil, err
		}
		p.owners[n] = owners
	}
	p.epoch = p.computeEpoch()
	return p, nil
}

// ringOwners distributes partitions 0..n-1 over nodes with consistent hashing with
// bounded loads, and returns the owner of each. With more nodes than partitions, the ring
// gets one partition per node and a load of exactly 1 (each node owns at most one), and
// only the first n partitions are used.
func ringOwners(nodes []string, n int, load float64) (owners []string, err error) {
	partitions := n
	if len(nodes) > n {
		partitions, load = len(nodes), 1
	}
	members := make([]consistent.Member, len(nodes))
	for i, id := range nodes {
		members[i] = ringMember(id + "/")
	}
	defer func() {
		// The configuration rules out consistent's "not enough room" panic; should it
		// happen anyway, it is an error of this placement, not a crash of the node.
		if r := recover(); r != nil {
			err = fmt.Errorf("placement: %d key groups over %d nodes: %v", n, len(nodes), r)
		}
	}()
	ring := consistent.New(members, consistent.Config{
		Hasher:            xxhasher{},
		PartitionCount:    partitions,
		ReplicationFactor: virtualNodes,
		Load:              load,
	})
	owners = make([]string, n)
	for i := range owners {
		id := ring.GetPartitionOwner(i).String()
		owners[i] = id[:len(id)-1]
	}
	return owners, nil
}

// ringMember is a node on the ring. consistent names a node's points "%s%d" of its name
// and the point's number, so nodes "n-1" and "n-11" would share points ("n-110"); the name
// is the node ID with "/" appended, which cannot collide that way.
type ringMember string

func (m ringMember) String() string { return string(m) }

// xxhasher is consistent's Hasher: xxhash, as everywhere else in Eddy.
type xxhasher struct{}

func (xxhasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// computeEpoch hashes everything the owners depend on: nodes and settings.
func (p *Placement) computeEpoch() Epoch {
	d := xxhash.New()
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		_, _ = d.Write(b[:])
	}
	str := func(s string) {
		put(uint64(len(s)))
		_, _ = d.WriteString(s)
	}
	str("eddy placement v1")
	put(math.Float64bits(p.cfg.load))
	put(virtualNodes)
	put(uint64(p.cfg.keyGroups))
	jobs := p.Jobs()
	put(uint64(len(jobs)))
	for _, j := range jobs {
		str(j)
		put(uint64(p.cfg.jobs[j]))
	}
	put(uint64(len(p.nodes)))
	for _, n := range p.nodes {
		str(n)
	}
	return Epoch(d.Sum64())
}

// Epoch returns the placement's epoch.
func (p *Placement) Epoch() Epoch { return p.epoch }

// Self returns the node this placement was computed for.
func (p *Placement) Self() string { return p.self }

// Nodes returns the node IDs the placement spreads over, sorted.
func (p *Placement) Nodes() []string { return slices.Clone(p.nodes) }

// Jobs returns the jobs named with the Job option, sorted.
func (p *Placement) Jobs() []string {
	jobs := make([]string, 0, len(p.cfg.jobs))
	for j := range p.cfg.jobs {
		jobs = append(jobs, j)
	}
	slices.Sort(jobs)
	return jobs
}

// KeyGroups returns the number of key groups the placement assumes for job.
func (p *Placement) KeyGroups(job string) int {
	if n, ok := p.cfg.jobs[job]; ok {
		return n
	}
	return p.cfg.keyGroups
}

// Owner returns the node ID that owns key group keyGroup of job (self included: Owner never
// returns ""). Every stage of the key group, and source split keyGroup, is there. Key groups
// are numbered 0..KeyGroups(job)-1; a larger index (a source with more splits than key
// groups) is placed like index mod KeyGroups(job).
func (p *Placement) Owner(job string, keyGroup int) string {
	owners := p.owners[p.KeyGroups(job)]
	n := len(owners)
	return owners[(mod(keyGroup, n)+int(xxhash.Sum64String(job)%uint64(n)))%n]
}

func mod(a, n int) int { return ((a % n) + n) % n }

// Node returns the node ID that runs id, or "" if this node does (actor.Placement).
func (p *Placement) Node(id actor.Identity) string {
	if o := p.Owner(id.Job, id.Index); o != p.self {
		return o
	}
	return ""
}

// Table returns which of key groups 0..keyGroups-1 of job each node owns, for every node
// (a node that owns none has an empty list), each list ascending.
func (p *Placement) Table(job string, keyGroups int) map[string][]int {
	t := make(map[string][]int, len(p.nodes))
	for _, n := range p.nodes {
		t[n] = []int{}
	}
	for kg := range keyGroups {
		o := p.Owner(job, kg)
		t[o] = append(t[o], kg)
	}
	return t
}
