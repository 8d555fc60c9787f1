//go:build !race

// Tests with two nodes in one process: each starts Proto.Actor remote, whose Start sets
// grpc's global logger (grpclog.SetLoggerV2) while the other's gRPC server may log, a data
// race inside protoactor-go that the race detector reports. cmd/eddy's process tests run
// nodes as separate processes, under the race detector's eye or not.

package cluster_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/actor/actortest"
	"github.com/eddyflow/eddy/cluster"
	"github.com/eddyflow/eddy/internal/keycount"
)

// Two nodes run a fenced job to its end: the coordinator claims the epoch and sends it
// with the restore point to the other node; the output in the bucket is exact.
func TestNodeRunFenced(t *testing.T) {
	const n = 20_000
	f := newFencedNodes(t)
	a, storeA := f.start(t, "a", 2)
	defer a.Close()
	b, storeB := f.start(t, "b", 2, a.Self().Addr)
	defer b.Close()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = a.Run(context.Background(), "keycount", 8, f.build(storeA, n, nil)) })
	wg.Go(func() { errs[1] = b.Run(context.Background(), "keycount", 8, f.build(storeB, n, nil)) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%v\n%s", err, f.log)
	}
	if _, _, err := keycount.Check(filepath.Join(f.dir, "keycount", "out"), keycount.GeneratedCounts(n, 13)); err != nil {
		t.Errorf("%v\n%s", err, f.log)
	}
	if !strings.Contains(f.log.String(), "claimed the fence") || !strings.Contains(f.log.String(), "fence_epoch=1") {
		t.Errorf("no run under a claimed epoch:\n%s", f.log)
	}
}

// With a quorum of two, a node left alone pauses: it starts no run, and says so.
func TestNodeQuorumPauses(t *testing.T) {
	f := newFencedNodes(t)
	a, storeA := f.start(t, "a", 2)
	defer a.Close()
	b, storeB := f.start(t, "b", 2, a.Self().Addr)
	held := &actortest.Gate{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx, "keycount", 8, f.build(storeA, 1_000_000, held)) }()
	go func() { done <- b.Run(ctx, "keycount", 8, f.build(storeB, 1_000_000, held)) }()
	deadline := time.Now().Add(20 * time.Second)
	for a.Placement() == nil || len(a.Placement().Nodes()) != 2 || len(a.Stats()) == 0 || a.Stats()[0].In == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not start on both nodes\n%s", f.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Close(); err != nil { // b goes: a sees one member of the two of the quorum
		t.Fatal(err)
	}
	for !strings.Contains(f.log.String(), "paused: fewer members than the quorum") {
		if time.Now().After(deadline) {
			t.Fatalf("a did not pause\n%s", f.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a settle and more: a paused node starts nothing
	logged := f.log.String()
	if after := logged[strings.Index(logged, "paused: fewer members"):]; strings.Contains(after, "run starts") {
		t.Errorf("a started a run while paused\n%s", logged)
	}
	cancel()
	held.Open()
	for range 2 {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, cluster.ErrLeft) {
			t.Errorf("Run: %v", err)
		}
	}
}
