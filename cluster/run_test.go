package cluster

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
