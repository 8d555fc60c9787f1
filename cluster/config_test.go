package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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

// The transport's server takes a gRPC message under its limit and refuses one over it
// (ResourceExhausted, gRPC's own check): a client speaks Proto.Actor's remote protocol to it
// directly, since a second Proto.Actor transport in this process would race with the first
// (Proto.Actor's Start writes gRPC's global logger, which a running server reads).
func TestTransportMessageSizeLimit(t *testing.T) {
	const limit = 64 << 10
	tr, err := startTransport(transportConfig{addr: "127.0.0.1:0", maxMessageSize: limit, logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	arrived := make(chan int, 16)
	if _, err := tr.System.Root.SpawnNamed(pa.PropsFromFunc(func(c pa.Context) {
		if m, ok := c.Message().(*wrapperspb.BytesValue); ok {
			arrived <- len(m.Value)
		}
	}), "sizes"); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(tr.System.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1<<30))) // this client sends anything
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect := func() remote.Remoting_ReceiveClient {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a stream that should end but does not fails the test
		t.Cleanup(cancel)
		stream, err := remote.NewRemotingClient(conn).Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
			ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "probe", Address: "127.0.0.1:1"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("connect response: %v", err)
		}
		return stream
	}
	batch := func(n int) *remote.RemoteMessage {
		data, err := proto.Marshal(&wrapperspb.BytesValue{Value: make([]byte, n)})
		if err != nil {
			t.Fatal(err)
		}
		return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
			TypeNames: []string{"google.protobuf.BytesValue"},
			Targets:   []*pa.PID{pa.NewPID(tr.System.Address(), "sizes")},
			Envelopes: []*remote.MessageEnvelope{{MessageData: data}},
		}}}
	}
	wait := func() int {
		t.Helper()
		select {
		case n := <-arrived:
			return n
		case <-time.After(30 * time.Second):
			t.Fatal("the message under the limit did not arrive")
			return 0
		}
	}

	stream := connect()
	if err := stream.Send(batch(1000)); err != nil {
		t.Fatal(err)
	}
	if n := wait(); n != 1000 {
		t.Errorf("arrived %d bytes, want 1000", n)
	}
	if err := stream.Send(batch(2 * limit)); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	_, err = stream.Recv() // the server ends the stream with the reason
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("a message over the limit: the stream ended with %v, want ResourceExhausted", err)
	}
	stream = connect() // the transport goes on
	if err := stream.Send(batch(limit - 1000)); err != nil {
		t.Fatal(err)
	}
	if n := wait(); n != limit-1000 {
		t.Errorf("arrived %d bytes, want %d: the message over the limit got through?", n, limit-1000)
	}
}
