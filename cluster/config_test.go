package cluster

import (
	"crypto/tls"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestValidateNetwork(t *testing.T) {
	key := make([]byte, 32)
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13}
	for _, tt := range []struct {
		name string
		cfg  NodeConfig
		want string // "" = valid
	}{
		{"loopback defaults", NodeConfig{}, ""},
		{"loopback binds", NodeConfig{Membership: Config{BindAddr: "127.0.0.1:7001"}, RemoteAddr: "127.0.0.1:8001"}, ""},
		{"localhost transport", NodeConfig{RemoteAddr: "localhost:8001"}, ""},
		{"non-loopback with key and TLS", NodeConfig{Membership: Config{BindAddr: "10.0.0.1:7001", Key: key},
			RemoteAddr: "10.0.0.1:8001", ServerTLS: tlsConf, ClientTLS: tlsConf}, ""},
		{"gossip without key", NodeConfig{Membership: Config{BindAddr: "10.0.0.1:7001"}, RemoteAddr: "10.0.0.1:8001", ServerTLS: tlsConf, ClientTLS: tlsConf},
			"node config: gossip on 10.0.0.1:7001 has no Key (memberlist would accept any node and send membership in the clear): give it one, or set Insecure on a trusted network"},
		{"transport without TLS", NodeConfig{Membership: Config{BindAddr: "10.0.0.1:7001", Key: key}, RemoteAddr: "10.0.0.1:8001"},
			"node config: the actor transport on 10.0.0.1:8001 has no TLS (anyone who reaches it could send actor messages): give it one, or set Insecure on a trusted network"},
		{"transport by host name without TLS", NodeConfig{RemoteAddr: "node1.example:8001"}, "the actor transport on node1.example:8001 has no TLS"},
		{"insecure allows both", NodeConfig{Membership: Config{BindAddr: "10.0.0.1:7001"}, RemoteAddr: "10.0.0.1:8001", Insecure: true}, ""},
		{"all interfaces without advertise", NodeConfig{Membership: Config{BindAddr: "0.0.0.0:7001", Key: key}, Insecure: true},
			"node config: gossip address \"0.0.0.0:7001\" listens on every interface, and peers cannot dial 0.0.0.0: set Advertise to the IP they reach this node at"},
		{"transport on all interfaces without advertise", NodeConfig{RemoteAddr: "[::]:8001", Insecure: true},
			"remote (actor transport) address \"[::]:8001\" listens on every interface, and peers cannot dial ::"},
		{"all interfaces with advertise", NodeConfig{Membership: Config{BindAddr: "0.0.0.0:7001", Key: key}, RemoteAddr: "0.0.0.0:8001",
			ServerTLS: tlsConf, ClientTLS: tlsConf, Advertise: "10.0.0.1"}, ""},
		{"advertise not an IP", NodeConfig{Advertise: "node1.example"}, `node config: Advertise "node1.example": want an IP address`},
		{"server TLS alone", NodeConfig{ServerTLS: tlsConf}, "node config: ServerTLS and ClientTLS go together"},
		{"client TLS alone", NodeConfig{ClientTLS: tlsConf}, "node config: ServerTLS and ClientTLS go together"},
		{"negative message size", NodeConfig{MaxMessageSize: -1}, "node config: MaxMessageSize -1: want 0 (the default) or more"},
		{"bad transport address", NodeConfig{RemoteAddr: "8001"}, `node config: remote (actor transport) address "8001"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validateNetwork(slog.New(slog.DiscardHandler))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("want no error, got %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("want an error with %q, got none", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// StartNode checks the network before it starts anything: a node on a non-loopback
// address in the clear does not start.
func TestStartNodeRefusesPlaintext(t *testing.T) {
	_, err := StartNode(t.Context(), NodeConfig{Membership: Config{NodeID: "n1", BindAddr: "0.0.0.0:0"}, Advertise: "127.0.0.1",
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "start node n1: node config: gossip on 0.0.0.0:0 has no Key") {
		t.Fatalf("StartNode on 0.0.0.0 without a key: %v, want the config error", err)
	}
}

// The transport's message size limit holds: a message under it arrives, one over it does
// not, and the transport goes on.
func TestTransportMessageSizeLimit(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const limit = 64 << 10
	start := func() *Transport {
		tr, err := startTransport(transportConfig{addr: "127.0.0.1:0", maxMessageSize: limit, logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.Stop)
		return tr
	}
	from, to := start(), start()
	var mu sync.Mutex
	var got []int
	arrived := make(chan struct{}, 16)
	pid, err := to.System.Root.SpawnNamed(pa.PropsFromFunc(func(c pa.Context) {
		if m, ok := c.Message().(*wrapperspb.BytesValue); ok {
			mu.Lock()
			got = append(got, len(m.Value))
			mu.Unlock()
			arrived <- struct{}{}
		}
	}), "sizes")
	if err != nil {
		t.Fatal(err)
	}
	target := pa.NewPID(to.System.Address(), pid.Id)
	send := func(n int) { from.System.Root.Send(target, &wrapperspb.BytesValue{Value: make([]byte, n)}) }
	wait := func(what string) {
		t.Helper()
		select {
		case <-arrived:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not arrive", what)
		}
	}
	send(1000)
	wait("a message under the limit")
	send(2 * limit) // fails the stream: the receiver refuses it
	// The sender reconnects; a small message sent after the large one arrives, and only it.
	for i := 0; ; i++ {
		send(1001)
		select {
		case <-arrived:
		case <-time.After(time.Second):
			if i < 30 {
				continue
			}
			t.Fatal("no message arrived after the one over the limit")
		}
		break
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range got {
		if n > limit {
			t.Errorf("a message of %d bytes arrived through a transport limited to %d", n, limit)
		}
	}
	if got[0] != 1000 || got[len(got)-1] != 1001 {
		t.Errorf("arrived %v: want 1000 first and 1001 last", got)
	}
}
