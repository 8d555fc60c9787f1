package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	pa "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultMaxMessageSize is the largest gRPC message a node's actor transport sends or
// accepts unless NodeConfig.MaxMessageSize says otherwise: 64 MiB.
//
// gRPC's own default is 4 MiB for what a server receives (and no limit for what a client
// sends), and Proto.Actor's remote sets none. One gRPC message of Proto.Actor's remote
// is a batch of up to 1,000 actor messages (its EndpointWriterBatchSize): data batches of
// up to BatchSize records each, and checkpoint acknowledgements, which carry the snapshots
// of the instances a node runs until they go to the checkpoint store directly. 4 MiB is
// reached by a few hundred batches of 50-byte records in flight to one node; a message over
// the limit fails the stream, the run fails, and the nodes start it again from the newest
// checkpoint, where it fails the same way. 64 MiB bounds what one peer can make another
// allocate for one message while leaving room for a burst; state larger than that must
// not travel in one message (snapshots are written to the store, not sent).
const DefaultMaxMessageSize = 64 << 20

// remoteStartMu serialises Proto.Actor remote's Start, which writes a global.
var remoteStartMu sync.Mutex

// transportConfig is what startTransport needs: NodeConfig's transport settings.
type transportConfig struct {
	// addr is where the transport listens, host:port ("" = 127.0.0.1:0).
	addr string
	// advertise is the host peers reach the transport at; "" = addr's host.
	advertise            string
	serverTLS, clientTLS *tls.Config
	// maxMessageSize bounds a gRPC message both ways; 0 = DefaultMaxMessageSize.
	maxMessageSize int
	logger         *slog.Logger
}

// startTransport starts an actor system with Proto.Actor remote listening on c.addr and
// advertising c.advertise with the listening port.
func startTransport(c transportConfig) (*Transport, error) {
	if c.addr == "" {
		c.addr = "127.0.0.1:0"
	}
	host, port, err := splitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("remote address %q: %w", c.addr, err)
	}
	// Proto.Actor's Start panics when it cannot listen: say so as an error first. With an
	// advertised host, the port must be known before Start (Proto.Actor advertises
	// AdvertisedHost as given), so port 0 is resolved here to a free port.
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("remote address %q: %w", c.addr, err)
	}
	if c.advertise != "" && port == 0 {
		port = l.Addr().(*net.TCPAddr).Port
	}
	_ = l.Close()
	if c.maxMessageSize <= 0 {
		c.maxMessageSize = DefaultMaxMessageSize
	}
	paLogger := slog.New(warnAndAbove{c.logger.Handler()}).With("component", "protoactor")
	sys := pa.NewActorSystem(pa.WithLoggerFactory(func(*pa.ActorSystem) *slog.Logger { return paLogger }))
	r := remote.NewRemote(sys, remote.Configure(host, port, transportOptions(c, port)...))
	// Start sets gRPC's global logger (grpclog.SetLoggerV2) every time: two nodes of one
	// process (tests, benchmarks) must not start at once. (A gRPC server of this process
	// that logs while another starts still races with that write, in Proto.Actor: tests
	// run under the race detector start one transport per process.)
	remoteStartMu.Lock()
	r.Start() // on port 0 it listens on a free port and advertises that one
	remoteStartMu.Unlock()
	return &Transport{System: sys, remote: r}, nil
}

// transportOptions returns Proto.Actor remote's options for c: TLS or plaintext, the
// message size limits on both sides, and the advertised address. Proto.Actor's
// WithDialOptions and WithServerOptions replace its defaults (among them its plaintext
// dial), so every option is given here.
func transportOptions(c transportConfig, port int) []remote.ConfigOption {
	server := []grpc.ServerOption{grpc.MaxRecvMsgSize(c.maxMessageSize), grpc.MaxSendMsgSize(c.maxMessageSize)}
	dial := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.maxMessageSize), grpc.MaxCallSendMsgSize(c.maxMessageSize))}
	if c.serverTLS != nil {
		server = append(server, grpc.Creds(credentials.NewTLS(c.serverTLS)))
	}
	if c.clientTLS != nil {
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(c.clientTLS)))
	} else {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	opts := []remote.ConfigOption{remote.WithServerOptions(server...), remote.WithDialOptions(dial...)}
	if c.advertise != "" {
		opts = append(opts, remote.WithAdvertisedHost(net.JoinHostPort(c.advertise, strconv.Itoa(port))))
	}
	return opts
}
