package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/internal/keycount"
)

// node is one eddy process of a test.
type node struct {
	id, gossip, admin string
	cmd               *exec.Cmd
	stderr            *os.File
	done              chan error
}

// freePort returns a loopback port free for TCP and UDP (memberlist takes both), below
// Linux's ephemeral range (32768 and up), so that no port the kernel hands out to a
// listener on port 0 (a node's transport) or to an outgoing connection takes it before its
// node binds it.
func freePort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		port := 20000 + mrand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free port below 32000")
	return 0
}

func startNode(t *testing.T, bin, dir, id string, args ...string) *node {
	t.Helper()
	n := &node{id: id, gossip: fmt.Sprintf("127.0.0.1:%d", freePort(t)), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)), done: make(chan error, 1)}
	f, err := os.Create(filepath.Join(dir, id+".log"))
	if err != nil {
		t.Fatal(err)
	}
	n.stderr = f
	n.cmd = exec.Command(bin, append([]string{"-id", id, "-bind", n.gossip, "-admin", n.admin}, args...)...)
	n.cmd.Stderr = f
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		_ = f.Close()
	})
	return n
}

// log returns what the node has logged, for failure messages (its debug lines left out).
func (n *node) log() string {
	b, _ := os.ReadFile(n.stderr.Name())
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "level=DEBUG") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 150 {
		keep = keep[len(keep)-150:]
	}
	return strings.Join(keep, "\n")
}

// remoteAddr waits for the node's "node started" line and returns its transport address.
func (n *node) remoteAddr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(n.stderr.Name())
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "node started") {
				continue
			}
			for _, f := range strings.Fields(l) {
				if v, ok := strings.CutPrefix(f, "remote="); ok {
					return v
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("node %s never said where its transport is\n%s", n.id, n.log())
	return ""
}

// processingWithout reports whether the node's current run (its admin endpoint) places no
// key group on node dead and its count stage has taken records in.
func (n *node) processingWithout(t *testing.T, dead string) bool {
	var pv cluster.PlacementView
	var stages []cluster.StageView
	for path, v := range map[string]any{"/placement": &pv, "/stages": &stages} {
		resp, err := http.Get("http://" + n.admin + path)
		if err != nil {
			return false
		}
		err = json.NewDecoder(resp.Body).Decode(v)
		resp.Body.Close()
		if err != nil {
			return false
		}
	}
	if slices.Contains(pv.Nodes, dead) || len(pv.Nodes) == 0 {
		return false
	}
	for _, st := range stages {
		if st.Stage == "count" && st.In > 0 {
			return true
		}
	}
	return false
}

// placement reads the node's admin endpoint: the key groups of the job by node in its
// current run (none before the first).
func (n *node) placement() (map[string][]int, bool) {
	resp, err := http.Get("http://" + n.admin + "/placement")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var v cluster.PlacementView
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return nil, false
	}
	for _, j := range v.Jobs {
		if j.Job == "keycount" {
			return j.Owners, true
		}
	}
	return nil, false
}

// ownerOf returns the node that owns key group kg, "" when the node does not know yet.
func (n *node) ownerOf(kg int) string {
	owners, _ := n.placement()
	for node, kgs := range owners {
		if slices.Contains(kgs, kg) {
			return node
		}
	}
	return ""
}

// keyGroups returns how many key groups the node owns.
func (n *node) keyGroups(*testing.T) (int, bool) {
	owners, ok := n.placement()
	return len(owners[n.id]), ok
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eddy")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}

// writeInput writes n lines {"key":...} over keys keys and returns the count per key.
func writeInput(t *testing.T, path string, n, keys int, seed uint64) map[string]int {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(seed, 1))
	want := map[string]int{}
	var b strings.Builder
	for range n {
		k := fmt.Sprintf("key-%d", rng.IntN(keys))
		want[k]++
		fmt.Fprintf(&b, "{\"key\":%q}\n", k)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return want
}

// checkOutput checks that out holds every (key, seq) for seq = 1..want[key] exactly once.
func checkOutput(t *testing.T, out string, want map[string]int) {
	t.Helper()
	if _, _, err := keycount.Check(out, want); err != nil {
		t.Error(err)
	}
}

func waitExit(t *testing.T, n *node, d time.Duration) {
	t.Helper()
	select {
	case err := <-n.done:
		if err != nil {
			t.Fatalf("node %s: %v\n%s", n.id, err, n.log())
		}
	case <-time.After(d):
		t.Fatalf("node %s did not finish within %v\n%s", n.id, d, n.log())
	}
}

// With TLS on the actor transport (certificates made here, signed by a CA made here), the
// nodes run the job across the wire and the output is exact. Their store is a local
// directory as a bucket (-store file://), fenced by a file lock.
func TestClusterTLS(t *testing.T) {
	const n, keys = 20_000, 31
	dir := t.TempDir()
	bin := buildBinary(t)
	cert, key, ca := writeTestPKI(t, dir)
	bucketDir := filepath.Join(dir, "bucket")
	if err := os.Mkdir(bucketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(bucketDir, "keycount", "out")
	want := keycount.GeneratedCounts(n, keys)
	common := []string{"-store", "file://" + bucketDir, "-generate", fmt.Sprint(n), "-keys", fmt.Sprint(keys), "-checkpoint", "100ms", "-key-groups", "16", "-expect", "2",
		"-tls-cert", cert, "-tls-key", key, "-tls-ca", ca}
	n1 := startNode(t, bin, dir, "n1", common...)
	n2 := startNode(t, bin, dir, "n2", append(common, "-join", n1.gossip)...)
	// The transport speaks TLS, and only to a client with a certificate the CA signed.
	remote := n1.remoteAddr(t)
	server, client, err := cluster.LoadMutualTLS(cert, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	client.NextProtos = []string{"h2"}
	if c, err := tls.Dial("tcp", remote, client); err != nil {
		t.Errorf("a TLS client with the CA's certificate: %v", err)
	} else {
		c.Close()
	}
	anonymous := &tls.Config{RootCAs: server.ClientCAs, NextProtos: []string{"h2"}}
	if c, err := tls.Dial("tcp", remote, anonymous); err == nil {
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("a client without a certificate was served (read: %v)", err)
		}
		c.Close()
	}
	waitExit(t, n1, time.Minute)
	waitExit(t, n2, time.Minute)
	checkOutput(t, out, want)
	for _, nd := range []*node{n1, n2} {
		if !strings.Contains(nd.log(), "run starts") || !strings.Contains(nd.log(), "members=\"[n1 n2]\"") {
			t.Errorf("node %s did not run the job with both nodes:\n%s", nd.id, nd.log())
		}
	}
}

// A node without TLS cannot talk to one with it: their run fails with a clear error rather
// than hanging. A node gives up after -max-failures runs and leaves; the other may then run
// the job alone, and what it commits is exact.
func TestClusterTLSMismatch(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t)
	cert, key, ca := writeTestPKI(t, dir)
	in, out, state := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out"), filepath.Join(dir, "state")
	want := writeInput(t, in, 1000, 7, 5)
	common := []string{"-state", state, "-in", in, "-out", out, "-key-groups", "8", "-expect", "2", "-max-failures", "1", "-rate", "100"}
	n1 := startNode(t, bin, dir, "n1", append(common, "-tls-cert", cert, "-tls-key", key, "-tls-ca", ca)...)
	n2 := startNode(t, bin, dir, "n2", append(common, "-join", n1.gossip)...)
	gaveUp, completed := 0, 0
	for _, nd := range []*node{n1, n2} {
		select {
		case err := <-nd.done:
			switch {
			case err == nil:
				completed++
			case strings.Contains(nd.log(), "lost the connection to a node of the run"):
				gaveUp++
			default:
				t.Errorf("node %s: %v, and no word of the lost connection\n%s", nd.id, err, nd.log())
			}
		case <-time.After(time.Minute):
			t.Fatalf("node %s hangs\n%s", nd.id, nd.log())
		}
	}
	if gaveUp == 0 {
		t.Errorf("no node gave up on the other (%d completed)", completed)
	}
	if completed > 0 {
		checkOutput(t, out, want)
	}
}

// writeTestPKI writes a CA and a certificate for 127.0.0.1 signed by it, both PEM.
func writeTestPKI(t *testing.T, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "eddy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nodeTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "eddy node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("node.pem", "CERTIFICATE", nodeDER), write("node-key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-state", "s", "-in", "x"},
		{"-state", "s", "-in", "x", "-out", "o", "-checkpoint", "0s"},
		{"-state", "s", "-in", "x", "-out", "o", "-rate", "-1"},
		{"-state", "s", "-in", "x", "-out", "o", "-key-groups", "0"},
		{"-state", "s", "-in", "x", "-out", "o", "-key", "zz"},
		{"-state", "s", "-in", "x", "-out", "o", "-tls-cert", "c"},
		{"-store", "s3://b", "-state", "s", "-in", "x"},
		{"-store", "s3://b", "-out", "o", "-generate", "10"},
		{"-store", "s3://b"},
		{"-store", "s3://b", "-in", "x", "-generate", "10"},
		{"-store", "s3://b", "-generate", "-1"},
		{"-store", "s3://b", "-generate", "10", "-keys", "0"},
		{"-store", "s3://b", "-generate", "10", "-quorum", "-1"},
		{"-store", "nosuchscheme://b", "-generate", "10"},
	} {
		if err := run(t.Context(), t.Context(), args, &strings.Builder{}); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
