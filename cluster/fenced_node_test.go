package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/internal/keycount"
	"github.com/eddyflow/eddy/persistence"
	"github.com/eddyflow/eddy/persistence/bucketsink"
)

// lockedLog is a log two nodes write at once.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fencedNodes are nodes in this process whose only shared state is a bucket in a local
// directory (fileblob, fenced by a file lock), each with its own store over it, as
// processes would have.
type fencedNodes struct {
	dir    string
	bucket *blob.Bucket
	log    *lockedLog
}

func newFencedNodes(t *testing.T) *fencedNodes {
	dir := t.TempDir()
	bucket, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	return &fencedNodes{dir: dir, bucket: bucket, log: &lockedLog{}}
}

func (f *fencedNodes) start(t *testing.T, id string, quorum int, seeds ...string) (*cluster.Node, *persistence.FencedCheckpoints) {
	t.Helper()
	where := "file://" + f.dir
	fence := persistence.NewLockedBucketFence(f.bucket, "keycount/fence", where, filepath.Join(f.dir, "fence.lock"))
	store, err := persistence.NewFencedCheckpoints(f.bucket, "keycount/", where, fence)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := cluster.StartNode(context.Background(), cluster.NodeConfig{
		Membership: cluster.Config{NodeID: id, Profile: cluster.Loopback, Seeds: seeds, Logger: quiet},
		Settle:     200 * time.Millisecond, Expect: quorum, Quorum: quorum, Fence: store,
		Logger: slog.New(slog.NewTextHandler(f.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, store
}

// build returns the keycount job over n generated records into the bucket, with a held
// gate stopping each source split after 500 records.
func (f *fencedNodes) build(store *persistence.FencedCheckpoints, n int64, held *actortest.Gate) func(func(*actor.Config)) (cluster.JobRun, error) {
	return func(option func(*actor.Config)) (cluster.JobRun, error) {
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		sink := bucketsink.JSONL[keycount.Output](f.bucket, "keycount/out/", "file://"+f.dir, store)
		src := keycount.Generated(n, 13)
		if held != nil {
			src = actortest.GatedSource(src, 500, held)
		}
		return keycount.GraphFrom("keycount", src, 0, sink).Build(graph.Parallelism(2), graph.MaxKeyGroups(8),
			graph.Logger(quiet), graph.Checkpoints(store, 20*time.Millisecond), option)
	}
}

// One node runs a fenced job to its end, twice: the first run claims epoch 1 and commits
// the output; the second claims epoch 2, restores the final checkpoint, commits nothing
// new, and ends.
func TestNodeRunFencedAlone(t *testing.T) {
	const n = 20_000
	f := newFencedNodes(t)
	for run := 1; run <= 2; run++ {
		a, store := f.start(t, "a", 1)
		if err := a.Run(context.Background(), "keycount", 8, f.build(store, n, nil)); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, f.log)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := keycount.Check(filepath.Join(f.dir, "keycount", "out"), keycount.GeneratedCounts(n, 13)); err != nil {
			t.Errorf("run %d: %v\n%s", run, err, f.log)
		}
		if want := fmt.Sprintf("fence_epoch=%d", run); !strings.Contains(f.log.String(), want) {
			t.Errorf("run %d: no run under epoch %d:\n%s", run, run, f.log)
		}
	}
	if !strings.Contains(f.log.String(), "restore=9223372036854775807") {
		t.Errorf("the second run did not restore the final checkpoint:\n%s", f.log)
	}
}
