package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gocloud.dev/blob"

	"github.com/eddyflow/eddy/persistence/s3test"
)

// The job, run by three processes on loopback, each writing its own output directory, gives
// exactly the windows the readings make: the union of the three outputs holds every
// (sensor, window) once, with its count and sum, and each node wrote some of them.
func TestThreeNodes(t *testing.T) {
	runThree(t, filepath.Join(t.TempDir(), "checkpoints"), nil)
}

// The same with the checkpoints and the output in an object store (SeaweedFS's S3
// gateway): the nodes share no directory at all, and the job's output is the committed
// objects under out/.
func TestThreeNodesObjectStore(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "ckpt")
	runThree(t, srv.URL("ckpt"), bucket)
}

// Two programs with different graphs (one-second windows, two-second windows) refuse each
// other: the second says which node runs which plan, and neither writes anything.
func TestPlanMismatch(t *testing.T) {
	bin := buildBinary(t)
	store := filepath.Join(t.TempDir(), "checkpoints")
	ports := freePorts(t, 2)
	outs := []string{filepath.Join(t.TempDir(), "n1"), filepath.Join(t.TempDir(), "n2")}
	first := start(t, bin, "n1", ports[0], "", store, outs[0], "-expect", "2", "-readings", "1000")
	second := exec.Command(bin, nodeArgs("n2", ports[1], fmt.Sprintf("127.0.0.1:%d", ports[0]), store, outs[1],
		"-expect", "2", "-readings", "1000", "-window", "2s")...)
	out, err := second.CombinedOutput()
	if err == nil {
		t.Fatalf("a node with another plan ran:\n%s", out)
	}
	for _, want := range []string{`node "n1"`, "runs plan", "this node runs plan", "every node must run the same graph"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refused node's output does not say %q:\n%s", want, out)
		}
	}
	first.stop(t)
	for _, dir := range outs {
		if got := readOutput(t, dir); len(got) != 0 {
			t.Errorf("%s: %d windows written; a node waiting for a peer with its own plan must run nothing", dir, len(got))
		}
	}
}

const readings, sensors = 60_000, 40

// runThree runs the job on three nodes with store; with bucket (the store's), the output
// goes to the store and is read from there, else to each node's own directory.
func runThree(t *testing.T, store string, bucket *blob.Bucket) {
	bin := buildBinary(t)
	ports := freePorts(t, 3)
	seed := fmt.Sprintf("127.0.0.1:%d", ports[0])
	var nodes []*proc
	var outs []string
	for i, port := range ports {
		out := ""
		if bucket == nil {
			out = filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i+1))
			outs = append(outs, out)
		}
		join := seed
		if i == 0 {
			join = ""
		}
		nodes = append(nodes, start(t, bin, fmt.Sprintf("n%d", i+1), port, join, store, out,
			"-expect", "3", "-readings", fmt.Sprint(readings), "-sensors", fmt.Sprint(sensors)))
	}
	for _, n := range nodes {
		if err := n.wait(2 * time.Minute); err != nil {
			for _, m := range nodes {
				m.stop(t)
			}
			t.Fatalf("%s: %v\n%s", n.id, err, n.log())
		}
	}
	got := map[string]Stats{}
	if bucket != nil {
		got = readBucketOutput(t, bucket, "out/")
	}
	for i, dir := range outs {
		part := readOutput(t, dir)
		if len(part) == 0 {
			t.Errorf("node n%d wrote no windows: its key groups did no work\n%s", i+1, nodes[i].log())
		}
		for k, v := range part {
			if _, dup := got[k]; dup {
				t.Errorf("window %s written by two nodes", k)
			}
			got[k] = v
		}
	}
	want := expected(readings, sensors, time.Second)
	if !maps.Equal(got, want) {
		missing, extra, wrong := 0, 0, 0
		for k, v := range want {
			g, ok := got[k]
			switch {
			case !ok:
				missing++
			case g != v:
				wrong++
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				extra++
			}
		}
		t.Fatalf("output: %d windows, want %d: %d missing, %d extra, %d with other stats", len(got), len(want), missing, extra, wrong)
	}
}

// expected computes the job's output from the readings directly.
func expected(n int64, sensors int, window time.Duration) map[string]Stats {
	out := map[string]Stats{}
	for i := range n {
		r := reading(i, sensors)
		start := r.At - r.At%window.Milliseconds()
		k := fmt.Sprintf("%s@%d", r.Sensor, start)
		s := out[k]
		out[k] = Stats{s.Count + 1, s.Sum + r.Value}
	}
	return out
}

// readBucketOutput reads the committed output objects under prefix of bucket (not the
// pending or retracted ones), keyed by sensor@start; a window written twice fails the test.
func readBucketOutput(t *testing.T, bucket *blob.Bucket, prefix string) map[string]Stats {
	t.Helper()
	out := map[string]Stats{}
	objects := 0
	it := bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(t.Context())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		if obj.IsDir || !strings.HasPrefix(path.Base(obj.Key), "part-c") {
			continue
		}
		objects++
		data, err := bucket.ReadAll(t.Context(), obj.Key)
		if err != nil {
			t.Fatalf("read %s: %v", obj.Key, err)
		}
		readLines(t, obj.Key, bytes.NewReader(data), out)
	}
	if objects == 0 {
		t.Fatalf("no committed output under %s", prefix)
	}
	return out
}

// readOutput reads a node's committed output, keyed by sensor@start; a window written twice
// fails the test.
func readOutput(t *testing.T, dir string) map[string]Stats {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Stats{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		readLines(t, f, fh, out)
		fh.Close()
	}
	return out
}

// readLines adds the windows of one output file (name) to out; a window written twice
// fails the test.
func readLines(t *testing.T, name string, r io.Reader, out map[string]Stats) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var o Output
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("%s: %v in %q", name, err, sc.Text())
		}
		if o.End-o.Start != time.Second.Milliseconds() {
			t.Errorf("%s: window [%d, %d) is not one second", name, o.Start, o.End)
		}
		k := fmt.Sprintf("%s@%d", o.Key, o.Start)
		if _, dup := out[k]; dup {
			t.Errorf("%s: window %s written twice", name, k)
		}
		out[k] = o.Value
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "clustered-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "clustered")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	if code == 0 {
		// Every process's waiter has returned.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func nodeArgs(id string, port int, join, store, out string, extra ...string) []string {
	args := []string{"-id", id, "-bind", fmt.Sprintf("127.0.0.1:%d", port), "-store", store,
		"-checkpoint", "100ms", "-settle", "500ms"}
	if out != "" {
		args = append(args, "-out", out)
	}
	if join != "" {
		args = append(args, "-join", join)
	}
	return append(args, extra...)
}

// proc is a running node process whose stderr is kept.
type proc struct {
	id   string
	cmd  *exec.Cmd
	done chan error
	mu   sync.Mutex
	buf  strings.Builder
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

func start(t *testing.T, bin, id string, port int, join, store, out string, extra ...string) *proc {
	t.Helper()
	p := &proc{id: id, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, nodeArgs(id, port, join, store, out, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// wait waits for the process to exit, and kills it after within.
func (p *proc) wait(within time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("still running after %v", within)
	}
}

// stop asks the process to leave (SIGTERM) and waits for it, killing it if it hangs.
func (p *proc) stop(t *testing.T) {
	select {
	case err := <-p.done:
		p.done <- err
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(30 * time.Second); err != nil {
		t.Errorf("%s after SIGTERM: %v\n%s", p.id, err, p.log())
	}
}

// freePorts returns n free loopback ports, free for TCP and UDP (memberlist binds both).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if !slices.Contains(ports, port) {
			ports = append(ports, port)
		}
	}
	return ports
}
