package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profile chooses memberlist's timing: how often nodes probe and gossip, and so how fast a
// failure is detected against how much traffic the cluster makes.
type Profile uint8

const (
	// LAN is memberlist's DefaultLANConfig: a probe a second, a failed node declared dead
	// after a few seconds, a full state sync every 30 s. The zero value.
	LAN Profile = iota
	// Loopback is for nodes on one machine (tests): probes every 100 ms, gossip every
	// 20 ms, so joins, leaves and failures are seen within a second or two. Its timeouts
	// are too short for a real network.
	Loopback
)

func (p Profile) String() string {
	switch p {
	case LAN:
		return "lan"
	case Loopback:
		return "loopback"
	default:
		return fmt.Sprintf("profile(%d)", uint8(p))
	}
}

// memberlistConfig returns memberlist's configuration for the profile: its own named
// profile, then only what differs.
func (p Profile) memberlistConfig() *memberlist.Config {
	if p == LAN {
		return memberlist.DefaultLANConfig()
	}
	c := memberlist.DefaultLocalConfig()
	// Loopback answers in microseconds, but test machines run several nodes and the race
	// detector on two cores: a probe timeout shorter than a starved scheduler's pause
	// declares live nodes dead, and one that misses the news of its death never refutes it.
	c.ProbeInterval = 200 * time.Millisecond // a failure check five times a second
	c.ProbeTimeout = 150 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond // joins and leaves spread within a few rounds
	c.SuspicionMult = 4                      // dead after 0.8 s of suspicion when confirmed
	c.PushPullInterval = 2 * time.Second     // full syncs repair what gossip missed, cheaply here
	c.GossipToTheDeadTime = 10 * time.Second // a node declared dead has this long to hear it and refute
	c.TCPTimeout = time.Second               // a join to a missing seed fails fast
	c.QueueCheckInterval = 2 * time.Second   // no need to wait 30 s for a queue warning
	c.AwarenessMaxMultiplier = 4             // a slow (race-instrumented) node backs off less
	return c
}

// Meta is what a node tells the others about itself, beyond its gossip address. It travels
// in memberlist's node metadata, at most 512 bytes encoded.
type Meta struct {
	// AdminAddr is the host:port of the node's admin HTTP endpoint; "" if it has none.
	AdminAddr string `json:"admin_addr,omitempty"`
	// RemoteAddr is the host:port of the node's actor transport (protoactor remote), where
	// other nodes send messages for the identities it owns; "" if it has none yet.
	RemoteAddr string `json:"remote_addr,omitempty"`
	// Plan is the fingerprint of the job's plan the node runs (Fingerprint); "" if it
	// does not say. A node with a Plan refuses to meet a node with another.
	Plan string `json:"plan,omitempty"`
}

// Config says how a node joins the cluster. NodeID is required; every other zero value
// has a stated default.
type Config struct {
	// NodeID names the node: unique in the cluster and stable across restarts, since
	// placement hashes it (a node that comes back under the same NodeID gets the same key
	// groups back). Required.
	NodeID string
	// BindAddr is the host:port memberlist listens on, UDP and TCP both. The host must be
	// an IP address; port 0 picks a free port (Members.Self tells which). "" means
	// 127.0.0.1:0: a node that should be reachable from other machines must say where.
	BindAddr string
	// Seeds are the gossip addresses (host:port) of nodes to join through; one that
	// answers is enough. None: the node starts a cluster of its own, which others join.
	Seeds []string
	// Key encrypts and authenticates gossip with AES-GCM: 16, 24 or 32 bytes for AES-128,
	// -192 or -256. Every node must use the same key; a node with another key (or none)
	// cannot join. nil: gossip in the clear, acceptable only on a trusted network.
	Key []byte
	// Profile chooses probe and gossip timing: LAN (the zero value) or Loopback for tests.
	Profile Profile
	// AdvertiseAddr is the IP address the other nodes reach this one at, with BindAddr's
	// port; "" means BindAddr's host (memberlist picks a private address of the machine
	// when that is 0.0.0.0).
	AdvertiseAddr string
	// Meta is published to the other nodes with the node's membership.
	Meta Meta
	// Logger receives memberlist's log: its errors and warnings at Warn, the rest at Debug,
	// each with the attribute node=NodeID. nil: slog.Default().
	Logger *slog.Logger
}

// validate checks c and fills in defaults, once, returning the bind host and port.
func (c *Config) validate() (host string, port int, err error) {
	if c.NodeID == "" {
		return "", 0, errors.New("cluster config: NodeID is required")
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1:0"
	}
	host, ps, err := net.SplitHostPort(c.BindAddr)
	if err != nil {
		return "", 0, fmt.Errorf("cluster config: BindAddr %q: %w", c.BindAddr, err)
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("cluster config: BindAddr %q: host must be an IP address", c.BindAddr)
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("cluster config: BindAddr %q: bad port", c.BindAddr)
	}
	switch len(c.Key) {
	case 0, 16, 24, 32:
	default:
		return "", 0, fmt.Errorf("cluster config: Key is %d bytes, want 16, 24 or 32", len(c.Key))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return "", 0, fmt.Errorf("cluster config: AdvertiseAddr %q: want an IP address", c.AdvertiseAddr)
	}
	if c.Profile > Loopback {
		return "", 0, fmt.Errorf("cluster config: unknown %v", c.Profile)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return host, port, nil
}

// encodeMeta encodes m as memberlist node metadata, refusing what does not fit.
func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode node meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("encode node meta: %d bytes, memberlist allows %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// Member is a live node of the cluster as this node sees it.
type Member struct {
	// NodeID is the node's Config.NodeID.
	NodeID string `json:"node_id"`
	// Addr is the node's gossip address, host:port.
	Addr string `json:"addr"`
	// Meta is what the node published; empty if its metadata could not be decoded.
	Meta
}

// Members is this node's membership of the cluster: memberlist running in the background,
// its view of the live nodes, and notice of changes. Methods are safe for concurrent use.
type Members struct {
	ml   *memberlist.Memberlist
	meta []byte
	// planMismatch is the last node refused for running another plan.
	planMismatch atomic.Pointer[PlanMismatchError]
	// quiet is set once gossip has stopped: memberlist's probe and gossip goroutines in
	// progress then are not waited for, and what they log (sends on closed sockets) is
	// dropped.
	quiet atomic.Bool

	// subsMu guards subs and stopped.
	subsMu  sync.Mutex
	subs    []chan struct{}
	stopped bool
}

// Join starts this node's membership and joins the cluster through any of cfg.Seeds (with
// no seeds it starts alone). It fails, leaving nothing running, if no seed can be reached
// or none accepts the node (a different gossip key), or if ctx ends first. Join tries each
// seed once; a caller that starts nodes in any order retries.
func Join(ctx context.Context, cfg Config) (*Members, error) {
	host, port, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("join cluster as %s: %w", cfg.NodeID, err)
	}
	meta, err := encodeMeta(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("join cluster as %s: %w", cfg.NodeID, err)
	}
	m := &Members{meta: meta}

	mc := cfg.Profile.memberlistConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port // 0: memberlist advertises the port it picked
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.SecretKey = cfg.Key
	mc.Delegate = delegate{m}
	mc.Events = events{m}
	if cfg.Meta.Plan != "" {
		check := planCheck{self: cfg.NodeID, plan: cfg.Meta.Plan, last: &m.planMismatch}
		mc.Merge, mc.Alive = check, check
	}
	mc.Logger = log.New(logWriter{log: cfg.Logger.With("node", cfg.NodeID), quiet: &m.quiet}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("join cluster as %s: start gossip on %s: %w", cfg.NodeID, cfg.BindAddr, err)
	}
	m.ml = ml
	if len(cfg.Seeds) == 0 {
		return m, nil
	}

	joined := make(chan error, 1)
	go func() {
		_, err := ml.Join(cfg.Seeds)
		joined <- err
	}()
	select {
	case err = <-joined:
	case <-ctx.Done():
		err = ctx.Err()
		_ = ml.Shutdown()
		<-joined // bounded by the profile's TCPTimeout per seed
	}
	if err != nil {
		_ = m.Shutdown()
		hint := ""
		if len(cfg.Key) > 0 {
			hint = " (gossip is encrypted: every node needs the same key)"
		}
		if pm := m.planMismatch.Load(); pm != nil {
			return nil, fmt.Errorf("join cluster as %s via %s: %w", cfg.NodeID, strings.Join(cfg.Seeds, ","), pm)
		}
		return nil, fmt.Errorf("join cluster as %s via %s: no seed accepted the node%s: %w",
			cfg.NodeID, strings.Join(cfg.Seeds, ","), hint, oneLine(err))
	}
	return m, nil
}

// oneLine turns memberlist's multi-line list of errors (one per seed) into one line, still
// wrapping the original.
func oneLine(err error) error {
	list, ok := err.(interface{ WrappedErrors() []error })
	if !ok {
		return err
	}
	msgs := make([]string, 0, len(list.WrappedErrors()))
	for _, e := range list.WrappedErrors() {
		msgs = append(msgs, e.Error())
	}
	return lineError{msg: strings.Join(msgs, "; "), err: err}
}

type lineError struct {
	msg string
	err error
}

func (e lineError) Error() string { return e.msg }
func (e lineError) Unwrap() error { return e.err }

// Self returns this node as the others see it.
func (m *Members) Self() Member { return toMember(m.ml.LocalNode()) }

// Members returns the live nodes this node knows of, itself included, sorted by NodeID.
// A node suspected of failure counts as live until it is declared dead. After Leave or
// Shutdown it returns the last view.
func (m *Members) Members() []Member {
	nodes := m.ml.Members()
	out := make([]Member, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, toMember(n))
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

func toMember(n *memberlist.Node) Member {
	mb := Member{NodeID: n.Name, Addr: n.Address()}
	if len(n.Meta) > 0 {
		if err := json.Unmarshal(n.Meta, &mb.Meta); err != nil {
			mb.Meta = Meta{}
		}
	}
	return mb
}

// Changes returns a channel that receives a value after the membership changes: a node
// joined, left, failed, or updated its metadata. Signals coalesce: one value may stand for
// several changes, so a receiver reads Members afresh. Each call makes a new channel, for
// one receiver; every channel is closed by Leave or Shutdown.
func (m *Members) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	if m.stopped {
		close(ch)
		return ch
	}
	m.subs = append(m.subs, ch)
	return ch
}

// changed signals every Changes channel without blocking. memberlist calls it with its
// node lock held, so it must not call back into memberlist.
func (m *Members) changed() {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	if m.stopped {
		return
	}
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default: // a signal is pending: it covers this change too
		}
	}
}

// Leave tells the other nodes that this one is leaving, waits up to timeout for the news to
// spread, and then stops gossip: the others drop it at once instead of suspecting it.
// Calling it again, or after Shutdown, does nothing.
func (m *Members) Leave(timeout time.Duration) error {
	if !m.stop() {
		return nil
	}
	err := m.ml.Leave(timeout)
	if err != nil {
		err = fmt.Errorf("leave cluster: %w", err)
	}
	if serr := m.ml.Shutdown(); serr != nil {
		err = errors.Join(err, fmt.Errorf("stop gossip: %w", serr))
	}
	m.quiet.Store(true)
	return err
}

// Shutdown stops gossip without telling anyone: the other nodes see a failure and declare
// this node dead after their suspicion timeout. Leave is the graceful way; Shutdown is for
// a node that must stop at once (and for tests of failure). Calling it again, or after
// Leave, does nothing.
func (m *Members) Shutdown() error {
	if !m.stop() {
		return nil
	}
	err := m.ml.Shutdown()
	m.quiet.Store(true)
	if err != nil {
		return fmt.Errorf("stop gossip: %w", err)
	}
	return nil
}

// stop closes the Changes channels and reports whether this call was the first.
func (m *Members) stop() bool {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	if m.stopped {
		return false
	}
	m.stopped = true
	for _, ch := range m.subs {
		close(ch)
	}
	m.subs = nil
	return true
}

// delegate gives memberlist this node's metadata; Eddy sends no user messages over gossip.
type delegate struct{ m *Members }

func (d delegate) NodeMeta(int) []byte             { return d.m.meta }
func (d delegate) NotifyMsg([]byte)                {}
func (d delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d delegate) LocalState(bool) []byte          { return nil }
func (d delegate) MergeRemoteState([]byte, bool)   {}

// events turns memberlist's join, leave and update callbacks into Changes signals.
type events struct{ m *Members }

func (e events) NotifyJoin(*memberlist.Node)   { e.m.changed() }
func (e events) NotifyLeave(*memberlist.Node)  { e.m.changed() }
func (e events) NotifyUpdate(*memberlist.Node) { e.m.changed() }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = events{}
)

// logWriter carries memberlist's log lines ("[LEVEL] memberlist: text") to slog: errors
// and warnings at Warn, so that a wrong key or a flapping peer shows at the default level,
// and memberlist's routine chatter at Debug.
type logWriter struct {
	log   *slog.Logger
	quiet *atomic.Bool
}

func (w logWriter) Write(p []byte) (int, error) {
	if w.quiet.Load() {
		return len(p), nil
	}
	line := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelDebug
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[ERR] ", slog.LevelWarn}, {"[ERROR] ", slog.LevelWarn}, {"[WARN] ", slog.LevelWarn},
		{"[INFO] ", slog.LevelDebug}, {"[DEBUG] ", slog.LevelDebug},
	} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = rest, l.level
			break
		}
	}
	w.log.Log(context.Background(), level, strings.TrimPrefix(line, "memberlist: "), "component", "memberlist")
	return len(p), nil
}
