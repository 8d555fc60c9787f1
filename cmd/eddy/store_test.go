package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/eddyflow/eddy/internal/keycount"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/s3test"
)

// storeCluster is a test's object store: a real SeaweedFS server and a bucket in it, the
// only thing the nodes share.
type storeCluster struct {
	bin, url string
	bucket   *blob.Bucket
	fence    *persistence.BucketFence // for reading the fence object
}

// newStoreCluster returns the store of a test: prefix in bucket (whose URL is url), which
// the nodes are given with the URL's prefix parameter.
func newStoreCluster(bucket *blob.Bucket, url, bin, prefix string) *storeCluster {
	b := blob.PrefixedBucket(bucket, prefix)
	return &storeCluster{bin: bin, url: url + "&prefix=" + prefix, bucket: b,
		fence: persistence.NewBucketFence(b, "keycount/fence", "s3://eddy/"+prefix)}
}

// The cluster with nothing shared but a bucket on a real S3-compatible server (SeaweedFS):
// one server and bucket for the three tests, a prefix each.
func TestClusterObjectStore(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, "eddy")
	bin := buildBinary(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *storeCluster)
	}{
		{"failover and join", testFailoverAndJoin},
		{"zombie coordinator", testZombieCoordinator},
		{"minority pauses", testMinorityPauses},
	} {
		prefix := strings.ReplaceAll(tc.name, " ", "-") + "/"
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newStoreCluster(bucket, srv.URL("eddy"), bin, prefix)) })
	}
}

// start starts node id in a directory of its own (its working directory, and its log's):
// nothing on disk is shared.
func (c *storeCluster) start(t *testing.T, id string, args ...string) *node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, c.bin, dir, id, append([]string{"-store", c.url}, args...)...)
	n.cmd.Dir = dir
	return n
}

// committed is one committed output object.
type committed struct {
	key                          string
	writtenEpoch, committedEpoch string
}

// committedOutput lists the committed output objects.
func (c *storeCluster) committedOutput(t *testing.T) []committed {
	t.Helper()
	ctx := context.Background()
	var out []committed
	it := c.bucket.List(&blob.ListOptions{Prefix: "keycount/out/", Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("list committed output: %v", err)
		}
		if obj.IsDir || !strings.HasSuffix(obj.Key, ".jsonl") {
			continue
		}
		attrs, err := c.bucket.Attributes(ctx, obj.Key)
		if err != nil {
			t.Fatalf("attributes of %s: %v", obj.Key, err)
		}
		out = append(out, committed{key: obj.Key, writtenEpoch: attrs.Metadata["written-epoch"], committedEpoch: attrs.Metadata["committed-epoch"]})
	}
	return out
}

// checkOutput downloads the committed output and checks it holds every (key, seq) for
// seq = 1..want[key] exactly once.
func (c *storeCluster) checkOutput(t *testing.T, want map[string]int) {
	t.Helper()
	dir := t.TempDir()
	objs := c.committedOutput(t)
	for _, o := range objs {
		b, err := c.bucket.ReadAll(context.Background(), o.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(o.key)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, lines, err := keycount.Check(dir, want)
	if err != nil {
		t.Error(err)
	}
	t.Logf("committed output: %d objects, %d lines", files, lines)
}

// fenceState reads the fence object and its lineage.
func (c *storeCluster) fenceState(t *testing.T) (persistence.FenceState, persistence.Lineage) {
	t.Helper()
	st, err := c.fence.Current(context.Background())
	if err != nil {
		t.Fatalf("read the fence: %v", err)
	}
	var l persistence.Lineage
	if len(st.Record) > 0 {
		if err := json.Unmarshal(st.Record, &l); err != nil {
			t.Fatalf("fence record %q: %v", st.Record, err)
		}
	}
	return st, l
}

// fenceEpoch returns the fence epoch of the node's last run, from its log.
func (n *node) fenceEpoch() string {
	var epoch string
	for _, l := range strings.Split(n.log(), "\n") {
		if !strings.Contains(l, "run starts") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "fence_epoch="); ok {
				epoch = v
			}
		}
	}
	return epoch
}

// waitFor polls cond every 50 ms until it holds, failing after d with what.
func waitFor(t *testing.T, d time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// coordinatorOnceCommitting waits until every node runs the job and some output is
// committed, and returns the node that owns key group 0 (the coordinator).
func (c *storeCluster) coordinatorOnceCommitting(t *testing.T, nodes map[string]*node) *node {
	t.Helper()
	var coord *node
	waitFor(t, 30*time.Second, func() string { return "the job did not start and commit on three nodes\n" + logs(nodes) }, func() bool {
		for _, nd := range nodes {
			select {
			case err := <-nd.done:
				t.Fatalf("node %s ended early: %v\n%s", nd.id, err, nd.log())
			default:
			}
		}
		for _, nd := range nodes {
			if owners, ok := nd.placement(); !ok || len(owners) != len(nodes) {
				return false
			}
		}
		if len(c.committedOutput(t)) == 0 {
			return false
		}
		coord = nodes[nodes[slices.Sorted(mapKeys(nodes))[0]].ownerOf(0)]
		return coord != nil
	})
	return coord
}

func mapKeys(m map[string]*node) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func logs(nodes map[string]*node) string {
	var b strings.Builder
	for _, id := range slices.Sorted(mapKeys(nodes)) {
		fmt.Fprintf(&b, "%s:\n%s\n", id, nodes[id].log())
	}
	return b.String()
}

// The promise of the cluster, with nothing shared but a bucket on a real S3 server: three
// nodes run a keyed job with an exactly-once sink into the bucket, each in a directory of
// its own; one (the coordinator of checkpoints, the hardest to lose) is SIGKILLed mid-run
// and the others take its key groups over from the last checkpoint in the bucket; then a
// fourth joins and takes key groups (its admin endpoint shows them) at a handoff
// checkpoint; then one leaves gracefully; and the committed output in the bucket holds
// every (key, seq) exactly once.
func testFailoverAndJoin(t *testing.T, c *storeCluster) {
	const n, keys = 100_000, 97
	want := keycount.GeneratedCounts(n, keys)
	common := []string{"-generate", fmt.Sprint(n), "-keys", fmt.Sprint(keys), "-rate", "6000", "-checkpoint", "200ms", "-key-groups", "32", "-quorum", "2"}

	n1 := c.start(t, "n1", append(common, "-expect", "3")...)
	n2 := c.start(t, "n2", append(common, "-expect", "3", "-join", n1.gossip)...)
	n3 := c.start(t, "n3", append(common, "-expect", "3", "-join", n1.gossip)...)
	nodes := map[string]*node{"n1": n1, "n2": n2, "n3": n3}

	// Kill the coordinator (the owner of key group 0: checkpoints and the end of the job
	// are its) once the job has committed some output.
	victim := c.coordinatorOnceCommitting(t, nodes)
	var a, b *node // the survivors
	for _, id := range []string{"n1", "n2", "n3"} {
		if nd := nodes[id]; nd != victim {
			if a == nil {
				a = nd
			} else {
				b = nd
			}
		}
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-victim.done
	waitFor(t, 30*time.Second, func() string { return fmt.Sprintf("%s never ran again without %s\n%s", a.id, victim.id, a.log()) },
		func() bool { return a.processingWithout(t, victim.id) })
	t.Logf("failover: %v from SIGKILL of the coordinator %s to processing again without it", time.Since(killed).Round(time.Millisecond), victim.id)

	// A fourth node joins while the two survivors go on; it must get key groups.
	time.Sleep(time.Second)
	n4 := c.start(t, "n4", append(common, "-join", a.gossip)...)
	waitFor(t, 30*time.Second, func() string { return "n4 never owned key groups\n" + n4.log() }, func() bool {
		kg, ok := n4.keyGroups(t)
		return ok && kg > 0
	})
	waitFor(t, 30*time.Second, func() string { return a.id + " did not hand off when n4 joined\n" + a.log() },
		func() bool { return strings.Contains(a.log(), "stopped at a handoff checkpoint") })
	// The other survivor leaves gracefully (SIGTERM) while the job runs: it hands off,
	// leaves, exits 0.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, b, time.Minute)
	if !strings.Contains(b.log(), "left the cluster") {
		t.Errorf("%s did not leave gracefully\n%s", b.id, b.log())
	}
	for _, nd := range []*node{a, n4} {
		waitExit(t, nd, 2*time.Minute)
	}
	c.checkOutput(t, want)
	// Checkpoints are in the bucket too: the fence's lineage names the final one.
	if _, l := c.fenceState(t); len(l.Retained) == 0 || l.Retained[len(l.Retained)-1] != 1<<63-1 {
		t.Errorf("the fence's lineage does not end at the final checkpoint: %+v", l)
	}
}

// A zombie: the coordinator is SIGSTOPped mid-run; the other two take over under a new
// epoch. Then it is SIGCONTed, believing its run goes on: it must complete no checkpoint and
// commit no output (the bucket shows neither under its epoch after it was fenced off), it
// must say it steps down, and the output must be exact.
func testZombieCoordinator(t *testing.T, c *storeCluster) {
	const n, keys = 60_000, 53
	want := keycount.GeneratedCounts(n, keys)
	common := []string{"-generate", fmt.Sprint(n), "-keys", fmt.Sprint(keys), "-rate", "5000", "-checkpoint", "200ms", "-key-groups", "16", "-expect", "3"}
	n1 := c.start(t, "n1", common...)
	n2 := c.start(t, "n2", append(common, "-join", n1.gossip)...)
	n3 := c.start(t, "n3", append(common, "-join", n1.gossip)...)
	nodes := map[string]*node{"n1": n1, "n2": n2, "n3": n3}

	zombie := c.coordinatorOnceCommitting(t, nodes)
	zombieEpoch := zombie.fenceEpoch()
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var a *node
	for _, nd := range nodes {
		if nd != zombie && a == nil {
			a = nd
		}
	}
	// The others take over: a new epoch in the fence, and they process without it.
	waitFor(t, 30*time.Second, func() string { return "the others did not take over\n" + logs(nodes) }, func() bool {
		st, _ := c.fence.Current(context.Background())
		return fmt.Sprint(st.Epoch) != zombieEpoch && a.processingWithout(t, zombie.id)
	})
	_, lineageBefore := c.fenceState(t)
	var zombieRun *persistence.LineageRun
	for _, r := range lineageBefore.Runs {
		if fmt.Sprint(r.Epoch) == zombieEpoch {
			zombieRun = &r
		}
	}
	committedBefore := map[string]bool{}
	for _, o := range c.committedOutput(t) {
		if o.committedEpoch == zombieEpoch {
			committedBefore[o.key] = true
		}
	}
	t.Logf("the zombie %s ran epoch %s; the others took over: %+v", zombie.id, zombieEpoch, lineageBefore.Runs)
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		waitExit(t, nd, 2*time.Minute)
	}
	c.checkOutput(t, want)
	// Nothing completed or committed under the zombie's epoch after the others took over.
	_, lineageAfter := c.fenceState(t)
	for _, r := range lineageAfter.Runs {
		if fmt.Sprint(r.Epoch) == zombieEpoch && (zombieRun == nil || r.Last > zombieRun.Last) {
			t.Errorf("the zombie's epoch %s completed checkpoints after it was fenced off: %+v, before: %+v", zombieEpoch, r, zombieRun)
		}
	}
	for _, o := range c.committedOutput(t) {
		if o.committedEpoch == zombieEpoch && !committedBefore[o.key] {
			t.Errorf("the zombie's epoch %s committed %s after it was fenced off", zombieEpoch, o.key)
		}
	}
	if !strings.Contains(zombie.log(), "fenced off") || !strings.Contains(zombie.log(), "steps down") {
		t.Errorf("the zombie %s did not say it stepped down\n%s", zombie.id, zombie.log())
	}
	for _, l := range strings.Split(zombie.log(), "\n") {
		if strings.Contains(l, "fenced") || strings.Contains(l, "checkpoint failed") {
			t.Logf("zombie: %s", l)
		}
	}
}

// A minority: of three nodes two are SIGSTOPped. The survivor sees one member of three,
// fewer than the quorum of two: it pauses (says so) and commits nothing while paused,
// rather than running the job alone. The two are SIGCONTed, and the job finishes exactly.
func testMinorityPauses(t *testing.T, c *storeCluster) {
	const n, keys = 30_000, 41
	want := keycount.GeneratedCounts(n, keys)
	// -rate is per instance of the pace stage (two here): about 15 s of input, so the job is
	// far from done when two nodes stop.
	common := []string{"-generate", fmt.Sprint(n), "-keys", fmt.Sprint(keys), "-rate", "1000", "-checkpoint", "200ms", "-key-groups", "16", "-expect", "3"}
	n1 := c.start(t, "n1", common...)
	n2 := c.start(t, "n2", append(common, "-join", n1.gossip)...)
	n3 := c.start(t, "n3", append(common, "-join", n1.gossip)...)
	nodes := map[string]*node{"n1": n1, "n2": n2, "n3": n3}
	c.coordinatorOnceCommitting(t, nodes)
	survivor, stopped := n1, []*node{n2, n3}
	for _, nd := range stopped {
		if err := nd.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, func() string { return "the survivor did not pause\n" + survivor.log() },
		func() bool { return strings.Contains(survivor.log(), "paused: fewer members than the quorum") })
	fenceAtPause, _ := c.fenceState(t)
	outputAtPause := c.committedOutput(t)
	time.Sleep(3 * time.Second) // paused: nothing may change in the bucket
	if st, _ := c.fenceState(t); st.Epoch != fenceAtPause.Epoch || st.Commit != fenceAtPause.Commit {
		t.Errorf("the fence moved while the survivor was paused: %+v, then %+v", fenceAtPause, st)
	}
	if out := c.committedOutput(t); len(out) != len(outputAtPause) {
		t.Errorf("output was committed while the survivor was paused: %d objects, then %d", len(outputAtPause), len(out))
	}
	if l := survivor.log(); strings.Count(l[strings.Index(l, "paused: fewer members"):], "run starts") > 0 {
		t.Errorf("the survivor started a run while paused\n%s", l)
	}
	for _, nd := range stopped {
		if err := nd.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes {
		waitExit(t, nd, 2*time.Minute)
	}
	if !strings.Contains(survivor.log(), "quorum is back") {
		t.Errorf("the survivor did not say the quorum was back\n%s", survivor.log())
	}
	c.checkOutput(t, want)
}
