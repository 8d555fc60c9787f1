package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eddyflow/eddy/actor"
	"github.com/eddyflow/eddy/internal/admin"
)

// adminJob is what the admin endpoint shows of a running job.
type adminJob struct {
	jobState
	j     *Job
	ended chan struct{}

	// mu guards status.
	mu     sync.Mutex
	status admin.Status
}

func (a *adminJob) Stats() []actor.StageStats { return a.j.Stats() }
func (a *adminJob) Ended() <-chan struct{}    { return a.ended }
func (a *adminJob) Topology() any             { return a.j.desc }

func (a *adminJob) Status() admin.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

func (a *adminJob) Checkpoints() (actor.CheckpointStats, []actor.CheckpointRecord) {
	return a.j.aj.Load().Checkpoints(), a.j.aj.Load().CheckpointHistory()
}

// end records how the run ended and wakes the requests waiting for it.
func (a *adminJob) end(err error) {
	a.mu.Lock()
	now := time.Now()
	a.status.Ended = &now
	switch {
	case err == nil:
		a.status.State = "finished"
	case errors.Is(err, context.Canceled):
		a.status.State, a.status.Error = "cancelled", err.Error()
	default:
		a.status.State, a.status.Error = "failed", err.Error()
	}
	a.mu.Unlock()
	close(a.ended)
}

// serveAdmin starts the admin endpoint of the run, when one is asked for; stop ends it
// with the run's outcome, once the requests waiting for the end have their answer.
func (j *Job) serveAdmin(ctx context.Context) (stop func(error), err error) {
	addr := j.aj.Load().Config().Admin
	if addr == "" {
		return func(error) {}, nil
	}
	a := &adminJob{jobState: jobState{j}, j: j, ended: make(chan struct{}), status: admin.Status{Job: j.desc.Job, State: "running", Started: time.Now()}}
	srv, err := admin.Serve(context.WithoutCancel(ctx), addr, admin.Handler(a, admin.Options{}))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", j.desc.Job, err)
	}
	if tcp, ok := srv.Addr().(*net.TCPAddr); ok {
		j.adminAddr.Store(tcp)
	}
	j.aj.Load().Config().Logger.Info("admin endpoint", "job", j.desc.Job, "addr", "http://"+srv.Addr().String())
	return func(runErr error) {
		a.end(runErr)
		if err := srv.Close(); err != nil {
			j.aj.Load().Config().Logger.Warn("admin endpoint stopped early", "err", err)
		}
		j.adminAddr.Store(nil)
	}, nil
}

// AdminAddr returns the address the job's admin endpoint listens on while it runs (see
// Admin), or nil.
func (j *Job) AdminAddr() net.Addr {
	if a := j.adminAddr.Load(); a != nil {
		return a
	}
	return nil
}
