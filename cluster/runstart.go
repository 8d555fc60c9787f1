package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// RunFence fences the runs of a job in a store every node reaches (an S3 bucket):
// persistence.FencedCheckpoints is one, and the job must take its checkpoints into it.
type RunFence interface {
	// Claim claims a new epoch for a run this node coordinates, fencing off every older
	// run (their commits fail from then on, by the store's condition), and returns it with
	// the record the run starts from.
	Claim(ctx context.Context, holder string) (epoch uint64, record []byte, err error)
	// Enter makes this node's part of the run of epoch commit under it, from record, and
	// restore checkpoint restore (0: none), the one the coordinator chose.
	Enter(epoch uint64, record []byte, restore int64) error
	// Fenced returns a channel closed once a commit (or a Check) of the current run found a
	// newer epoch.
	Fenced() <-chan struct{}
	// Check reads the fence: an error, and Fenced closed, when a newer run has claimed it.
	// It guards nothing (commits are refused by the store's condition); it lets a run that
	// commits nothing for a while (a node paused, then back) learn that it must stop.
	Check(ctx context.Context) error
	// Newest returns the newest checkpoint committed by any run (0: none).
	// actor.FinalCheckpoint says the job has finished: a node may then run it without a
	// quorum, since all that is left is to commit its output.
	Newest(ctx context.Context) (int64, error)
}

// fenceCheckInterval is how often a node checks the fence while its run goes on.
const fenceCheckInterval = time.Second

// watchFence ends the run (cancel with errFencedOff) once fence says a newer run holds the
// job: a commit found it, or a check every fenceCheckInterval. It returns when ctx ends.
func watchFence(ctx context.Context, cancel context.CancelCauseFunc, fence RunFence) {
	fenced := fence.Fenced()
	tick := time.NewTicker(fenceCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-fenced:
			cancel(errFencedOff)
			return
		case <-tick.C:
			_ = fence.Check(ctx) // a newer epoch closes fenced; a store error waits for the next tick
		}
	}
}

// runStart is what a run's coordinator tells the other nodes before any builds its part:
// the run's epoch, the fence record it starts from and the checkpoint it restores.
type runStart struct {
	Job     string   `json:"job"`
	Members []string `json:"members"`
	Epoch   uint64   `json:"epoch"`
	Record  []byte   `json:"record,omitempty"`
	Restore int64    `json:"restore"`
}

// startQuery asks a coordinator for the start of its run of Job over Members, newer than
// epoch Left, the newest this node has run (and left).
type startQuery struct {
	Job     string   `json:"job"`
	Members []string `json:"members"`
	Left    uint64   `json:"left"`
}

// startsActorName is the name of every node's actor that answers startQuery.
const startsActorName = "eddy-run-starts"

// runStarts holds the start of the runs this node coordinates, by job, and answers other
// nodes' questions about them.
type runStarts struct {
	// mu guards byJob and stop.
	mu    sync.Mutex
	byJob map[string]runStart
	// stop ends the run of a job that another node has left.
	stop map[string]context.CancelCauseFunc
}

// publish makes st the start of the run of st.Job that this node coordinates; stop ends
// that run when another node asks for a newer one (it has left this one).
func (s *runStarts) publish(st runStart, stop context.CancelCauseFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byJob == nil {
		s.byJob, s.stop = map[string]runStart{}, map[string]context.CancelCauseFunc{}
	}
	s.byJob[st.Job], s.stop[st.Job] = st, stop
}

func (s *runStarts) withdraw(job string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byJob, job)
	delete(s.stop, job)
}

// errRunLeft ends a coordinator's run that another node of it has left: that node asks for
// a newer run over the same members.
var errRunLeft = errors.New("a node of the run has left it and asks for a new one")

// Receive answers a startQuery (a JSON wrapperspb.BytesValue) with the start of the run of
// that job over those members, or an empty BytesValue when there is none (yet).
func (s *runStarts) Receive(c pa.Context) {
	b, ok := c.Message().(*wrapperspb.BytesValue)
	if !ok {
		return
	}
	var q startQuery
	answer := &wrapperspb.BytesValue{}
	if json.Unmarshal(b.Value, &q) == nil {
		s.mu.Lock()
		st, ok := s.byJob[q.Job]
		stop := s.stop[q.Job]
		s.mu.Unlock()
		switch {
		case !ok || !slices.Equal(st.Members, q.Members):
		case st.Epoch <= q.Left:
			// The asker ran this epoch and left it: the run cannot go on without it.
			stop(errRunLeft)
		default:
			answer.Value, _ = json.Marshal(st)
		}
	}
	c.Respond(answer)
}

// startAskInterval is how often a node asks the coordinator for the run's start while it
// has none yet.
const startAskInterval = 100 * time.Millisecond

// askStart asks the coordinator at addr (its transport address) for the start of its run
// of job over members (node ids, sorted as Members returns them), newer than epoch left (a
// coordinator still in that run ends it), until it has one, the
// member list changes (errMembershipChanged),
// ctx ends, or timeout passes.
func (n *Node) askStart(ctx context.Context, addr, job string, members []string, left uint64, timeout time.Duration) (runStart, error) {
	q, err := json.Marshal(startQuery{Job: job, Members: members, Left: left})
	if err != nil {
		return runStart{}, err
	}
	pid := pa.NewPID(addr, startsActorName)
	deadline := time.Now().Add(timeout)
	var last error
	for {
		res, err := n.sys.Root.RequestFuture(pid, &wrapperspb.BytesValue{Value: q}, time.Second).Result()
		if err == nil {
			if b, ok := res.(*wrapperspb.BytesValue); ok && len(b.Value) > 0 {
				var st runStart
				if err := json.Unmarshal(b.Value, &st); err != nil {
					return runStart{}, fmt.Errorf("the coordinator's answer: %w", err)
				}
				return st, nil
			}
			last = errors.New("the coordinator has not started the run yet")
		} else {
			last = err
		}
		if time.Now().After(deadline) {
			return runStart{}, fmt.Errorf("ask the coordinator %s for the run's epoch and restore point: none within %v: %w", addr, timeout, last)
		}
		if !slices.Equal(idsOf(n.members.Members()), members) {
			return runStart{}, errMembershipChanged
		}
		select {
		case <-ctx.Done():
			return runStart{}, ctx.Err()
		case <-time.After(startAskInterval):
		}
	}
}

// idsOf returns the node ids of members, in their order.
func idsOf(members []Member) []string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.NodeID
	}
	return ids
}
