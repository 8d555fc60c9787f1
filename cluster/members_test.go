package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLogger sends a node's log to the test log, so that a failing test shows what
// memberlist said; Debug is left out unless -v.
// Lines logged after the test ends (memberlist does not wait for a probe in progress when
// it shuts down) are dropped: t.Log would panic.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	w := &tlogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tlogWriter struct {
	t *testing.T

	// mu guards done.
	mu   sync.Mutex
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// join starts a node on loopback with a free port and stops it when the test ends.
func join(t *testing.T, id string, key []byte, seeds ...string) *Members {
	t.Helper()
	m, err := Join(t.Context(), Config{
		NodeID:  id,
		Seeds:   seeds,
		Key:     key,
		Profile: Loopback,
		Meta:    Meta{AdminAddr: "127.0.0.1:9" + id[len(id)-1:], RemoteAddr: "127.0.0.1:8" + id[len(id)-1:]},
		Logger:  testLogger(t),
	})
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memberIDs(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.NodeID
	}
	return out
}

func ids(ms []Member) string { return strings.Join(memberIDs(ms), ",") }

// agreedEpoch computes each node's placement from its own view and checks they agree.
func agreedEpoch(t *testing.T, nodes ...*Members) Epoch {
	t.Helper()
	var first *Placement
	for _, n := range nodes {
		p := mustPlacement(t, n.Self().NodeID, memberIDs(n.Members()))
		if first == nil {
			first = p
		} else if p.Epoch() != first.Epoch() {
			t.Errorf("%s computes epoch %v, %s %v", p.Self(), p.Epoch(), first.Self(), first.Epoch())
		}
	}
	return first.Epoch()
}

func TestMembership(t *testing.T) {
	n1 := join(t, "node-1", nil)
	seed := n1.Self().Addr
	n2 := join(t, "node-2", nil, seed)
	n3 := join(t, "node-3", nil, seed)
	changes := n1.Changes()
	all := []*Members{n1, n2, n3}

	for _, n := range all {
		waitFor(t, n.Self().NodeID+" sees 3 members", 5*time.Second, func() bool {
			return ids(n.Members()) == "node-1,node-2,node-3"
		})
	}
	for _, n := range all {
		for _, m := range n.Members() {
			d := m.NodeID[len(m.NodeID)-1:]
			want := Meta{AdminAddr: "127.0.0.1:9" + d, RemoteAddr: "127.0.0.1:8" + d}
			if m.Meta != want {
				t.Errorf("%s sees %s with meta %+v, want %+v", n.Self().NodeID, m.NodeID, m.Meta, want)
			}
			if !strings.HasPrefix(m.Addr, "127.0.0.1:") || m.Addr == "127.0.0.1:0" {
				t.Errorf("%s sees %s at gossip address %q", n.Self().NodeID, m.NodeID, m.Addr)
			}
		}
		if got, want := n.Members(), n1.Members(); got[1].Addr != want[1].Addr {
			t.Errorf("%s and node-1 disagree on node-2's address: %s, %s", n.Self().NodeID, got[1].Addr, want[1].Addr)
		}
	}
	epoch3 := agreedEpoch(t, all...)
	drain(changes)

	// A graceful leave: the others drop node-3 as soon as the news reaches them.
	if err := n3.Leave(time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	for _, n := range all[:2] {
		waitFor(t, n.Self().NodeID+" sees node-3 leave", 5*time.Second, func() bool {
			return ids(n.Members()) == "node-1,node-2"
		})
	}
	select {
	case <-changes:
	default:
		t.Error("node-1's Changes channel was not signalled by node-3 leaving")
	}
	if agreedEpoch(t, all[:2]...) == epoch3 {
		t.Error("the placement epoch did not change when node-3 left")
	}

	// A failure: node-2 stops without a word, and node-1 declares it dead on its own.
	start := time.Now()
	if err := n2.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitFor(t, "node-1 detects node-2's failure", 5*time.Second, func() bool {
		return ids(n1.Members()) == "node-1"
	})
	t.Logf("node-1 saw node-2 fail after %v", time.Since(start).Round(10*time.Millisecond))

	// Leave and Shutdown are each safe to repeat, in either order; channels are closed.
	if err := n3.Shutdown(); err != nil {
		t.Errorf("shutdown after leave: %v", err)
	}
	if err := n2.Leave(time.Second); err != nil {
		t.Errorf("leave after shutdown: %v", err)
	}
	if err := n1.Leave(time.Second); err != nil {
		t.Errorf("leave: %v", err)
	}
	for range changes { // closed by Leave: the loop ends
	}
	if _, open := <-n1.Changes(); open {
		t.Error("Changes after Leave returned an open channel")
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestGossipKey(t *testing.T) {
	keyA := bytes.Repeat([]byte{'a'}, 32)
	keyB := bytes.Repeat([]byte{'b'}, 32)
	seed := join(t, "node-1", keyA)

	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"other key", keyB},
		{"no key", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			m, err := Join(ctx, Config{NodeID: "node-2", Seeds: []string{seed.Self().Addr},
				Key: tc.key, Profile: Loopback, Logger: testLogger(t)})
			if err == nil {
				_ = m.Shutdown()
				t.Fatal("join with a wrong key succeeded")
			}
			t.Logf("join refused: %v", err)
			if !strings.Contains(err.Error(), "no seed accepted the node") {
				t.Errorf("error %q does not say the seed refused the node", err)
			}
			// A few probe and gossip rounds later, the seed still knows only itself.
			time.Sleep(300 * time.Millisecond)
			if got := ids(seed.Members()); got != "node-1" {
				t.Errorf("the seed sees %s after a refused join", got)
			}
		})
	}

	t.Run("same key", func(t *testing.T) {
		m := join(t, "node-3", keyA, seed.Self().Addr)
		for _, n := range []*Members{seed, m} {
			waitFor(t, n.Self().NodeID+" sees both", 5*time.Second, func() bool {
				return ids(n.Members()) == "node-1,node-3"
			})
		}
		if err := m.Leave(time.Second); err != nil {
			t.Errorf("leave: %v", err)
		}
	})
}

func TestJoinErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no node id", Config{}, "NodeID is required"},
		{"short key", Config{NodeID: "n", Key: []byte("short")}, "Key is 5 bytes, want 16, 24 or 32"},
		{"host name", Config{NodeID: "n", BindAddr: "localhost:0"}, "host must be an IP address"},
		{"bad port", Config{NodeID: "n", BindAddr: "127.0.0.1:x"}, "bad port"},
		{"profile", Config{NodeID: "n", Profile: 7}, "unknown profile(7)"},
		{"meta too big", Config{NodeID: "n", Meta: Meta{AdminAddr: strings.Repeat("x", 600)}},
			"memberlist allows 512"},
		{"no seed answers", Config{NodeID: "n", Profile: Loopback, Seeds: []string{"127.0.0.1:1"}},
			"no seed accepted the node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Join(t.Context(), tc.cfg)
			if err == nil {
				_ = m.Shutdown()
				t.Fatalf("Join succeeded, want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Join: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestJoinCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Join(ctx, Config{NodeID: "n", Profile: Loopback}); err == nil {
		t.Fatal("Join with a canceled context succeeded")
	}
}

func TestChangesManyReceivers(t *testing.T) {
	n1 := join(t, "node-1", nil)
	a, b := n1.Changes(), n1.Changes()
	var wg sync.WaitGroup
	for _, ch := range []<-chan struct{}{a, b} {
		wg.Go(func() { <-ch })
	}
	n2 := join(t, "node-2", nil, n1.Self().Addr)
	wg.Wait() // both receivers were told of node-2
	if err := n2.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
}
