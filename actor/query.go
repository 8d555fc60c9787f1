package actor

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotHere says the instance a query asked for does not run in this process: on a
// cluster it runs on another node (placement says which), or the job is between runs.
var ErrNotHere = errors.New("the instance does not run here")

// AsOf is what a query's answer reflects: the instance's state after every record it has
// processed, which includes everything before the barrier of checkpoint Checkpoint.
type AsOf struct {
	// Checkpoint is the newest checkpoint the instance knows to be complete (the one the
	// run restored, at first); 0: none yet.
	Checkpoint int64 `json:"checkpoint"`
	// Watermark is the instance's input watermark (Unix ms) when HasWatermark; every record
	// it has processed is in the state. MaxWatermark: its inputs have ended.
	Watermark    int64 `json:"watermark"`
	HasWatermark bool  `json:"has_watermark"`
}

// queryMsg asks an instance to run fn on its task, in its own goroutine: fn may read the
// task's state but must copy (encode) what it returns.
type queryMsg struct {
	fn    func(Task) (any, error)
	reply chan queryReply // buffered: the instance never waits on it
}

type queryReply struct {
	v    any
	asOf AsOf
	err  error
}

// answer runs the query in the instance's goroutine, between two messages.
func (m queryMsg) answer(r *runner) {
	at := AsOf{Checkpoint: r.completed}
	if cp := r.env.Config.Restore; cp != nil && cp.ID != FinalCheckpoint {
		at.Checkpoint = max(at.Checkpoint, cp.ID)
	}
	if r.wm != MinWatermark {
		at.Watermark, at.HasWatermark = r.wm, true
	}
	defer func() {
		if p := recover(); p != nil {
			if Unwinding(p) {
				panic(p)
			}
			m.reply <- queryReply{err: fmt.Errorf("query %s: panic: %v", r.env.ID, p)}
		}
	}()
	v, err := m.fn(r.task)
	m.reply <- queryReply{v: v, asOf: at, err: err}
}

// Query runs fn on the task of instance index of vertex stage, in the instance's goroutine
// between two messages, while the job runs, and returns what fn returned and what the
// instance's state reflected then. fn must not keep or return references into the task's
// state: it copies (encodes) what it returns. ErrNotHere when the instance does not run in
// this process.
func (j *Job) Query(ctx context.Context, stage string, index int, fn func(Task) (any, error)) (any, AsOf, error) {
	send := j.inspect.Load()
	if send == nil {
		return nil, AsOf{}, errors.New("query: the job is not running")
	}
	msg := queryMsg{fn: fn, reply: make(chan queryReply, 1)}
	if !(*send)(Identity{Job: j.plan.Job, Stage: stage, Index: index}, msg) {
		return nil, AsOf{}, fmt.Errorf("query %s/%d: %w", stage, index, ErrNotHere)
	}
	select {
	case r := <-msg.reply:
		return r.v, r.asOf, r.err
	case <-ctx.Done():
		return nil, AsOf{}, fmt.Errorf("query %s/%d: %w", stage, index, ctx.Err())
	}
}
