package cluster

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

func TestRunConfigValidate(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  RunConfig
		want string // "" = valid
	}{
		{"store only", RunConfig{Store: dir}, ""},
		{"no store", RunConfig{}, "run config: a checkpoint store is required (-store DIR or URL)"},
		{"negative checkpoint", RunConfig{Store: dir, Checkpoint: -time.Second}, "run config: checkpoint interval -1s: want more than 0"},
		{"negative key groups", RunConfig{Store: dir, KeyGroups: -1}, "run config: key groups -1: want at least 1"},
		{"negative parallelism", RunConfig{Store: dir, Parallelism: -2}, "run config: parallelism -2: want at least 1"},
		{"negative settle", RunConfig{Store: dir, Settle: -time.Second}, "run config: settle -1s: want 0 (the default) or more"},
		{"negative max failures", RunConfig{Store: dir, MaxFailures: -1}, "run config: max failures -1: want at least 1"},
		{"bad bind", RunConfig{Store: dir, Bind: "7001"}, `run config: bind "7001"`},
		{"TLS cert alone", RunConfig{Store: dir, TLSCert: cert}, "run config: the TLS certificate, key and CA files go together"},
		{"TLS files that do not load", RunConfig{Store: dir, TLSCert: cert, TLSKey: cert, TLSCA: cert}, "run config: load TLS certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.validate()
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

// The flags fill RunConfig, and what they leave out gets the stated defaults.
func TestRunConfigFlags(t *testing.T) {
	var c RunConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Flags(fs)
	err := fs.Parse([]string{"-id", "n2", "-bind", "10.0.0.2:7946", "-advertise", "10.0.0.2", "-join", "10.0.0.1:7946, 10.0.0.3:7946",
		"-store", "s3://ckpt?region=eu-west-1", "-gossip-key", strings.Repeat("ab", 16), "-expect", "3", "-insecure"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s %s %q %s %d %s %d %d %d %v %s %v %v", nc.Membership.NodeID, nc.Membership.BindAddr, nc.Membership.Seeds, nc.RemoteAddr,
		len(nc.Membership.Key), nc.Advertise, nc.Expect, c.KeyGroups, c.Parallelism, c.Checkpoint, nc.AdminAddr, nc.Insecure, nc.Membership.Profile)
	want := `n2 10.0.0.2:7946 ["10.0.0.1:7946" "10.0.0.3:7946"] 10.0.0.2:0 16 10.0.0.2 3 128 4 1s 127.0.0.1:0 true lan`
	if got != want {
		t.Errorf("config from flags:\n got %s\nwant %s", got, want)
	}
	if err := fs.Parse([]string{"-gossip-key", "zz"}); err == nil {
		t.Error("-gossip-key zz: no error")
	}
}

// RunGraph refuses, before it starts anything, a job whose options change the key groups
// behind the cluster's back.
func TestRunGraphKeyGroupsFromConfig(t *testing.T) {
	newGraph := func(*Store) (*graph.Graph, error) {
		g := graph.New("counts")
		nums := graph.From(g, stream.Generate(10, func(i int64) int64 { return i }))
		graph.Count(graph.KeyBy(nums, func(i int64) int64 { return i % 3 }), graph.Name("count")).To(stream.NewCollectSink[stream.KV[int64, int64]]())
		return g, nil
	}
	err := RunGraph(t.Context(), RunConfig{Store: t.TempDir(), Logger: testLogger(t)}, newGraph, graph.MaxKeyGroups(64))
	want := `run counts: stage "count" has 64 key groups, the cluster places 128: set them with RunConfig.KeyGroups (-key-groups), not graph.MaxKeyGroups`
	if err == nil || err.Error() != want {
		t.Errorf("RunGraph with MaxKeyGroups(64):\n got %v\nwant %s", err, want)
	}
	if err := RunGraph(t.Context(), RunConfig{Store: t.TempDir()}, func(*Store) (*graph.Graph, error) { return nil, errors.New("no graph today") }); err == nil ||
		!strings.Contains(err.Error(), "run graph: build the graph: no graph today") {
		t.Errorf("RunGraph whose newGraph fails: %v", err)
	}
}

// A node bound to every interface advertises the address it was given, for gossip and for
// the actor transport (with the port it bound), never 0.0.0.0.
func TestStartNodeAdvertise(t *testing.T) {
	n, err := StartNode(t.Context(), NodeConfig{
		Membership: Config{NodeID: "n1", BindAddr: "0.0.0.0:0", Profile: Loopback, Logger: testLogger(t)},
		RemoteAddr: "0.0.0.0:0", Advertise: "127.0.0.1", Insecure: true, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	self := n.Self()
	for what, addr := range map[string]string{"gossip": self.Addr, "remote": self.RemoteAddr} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" || port == "0" {
			t.Errorf("%s address %q: want 127.0.0.1 and the bound port", what, addr)
		}
	}
	// The advertised transport address is where it listens.
	c, err := net.Dial("tcp", self.RemoteAddr)
	if err != nil {
		t.Fatalf("dial the advertised transport %s: %v", self.RemoteAddr, err)
	}
	c.Close()
}
