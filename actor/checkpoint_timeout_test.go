package actor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

type savedSink struct{ saved chan Checkpoint }

func (s savedSink) Save(_ context.Context, cp Checkpoint) error {
	s.saved <- cp
	return nil
}

// A checkpoint whose acknowledgements do not all come in time is aborted: nothing is saved
// for it, a late acknowledgement of it changes nothing, and the next checkpoint starts and
// completes (a lost acknowledgement used to stop checkpoints for good).
func TestCheckpointTimeoutAbortsAndGoesOn(t *testing.T) {
	defer goleak.VerifyNone(t)
	triggered := make(chan int64, 16)
	sink := savedSink{saved: make(chan Checkpoint, 16)}
	failures := make(chan error, 16)
	c := &coordinator{
		sink: sink, interval: 20 * time.Millisecond, timeout: 100 * time.Millisecond, total: 2,
		acks: make(chan ackMsg, 8), stats: &checkpointCounters{}, requests: make(chan chan<- checkpointResult),
		onError: func(err error) { failures <- err },
		send: func(id int64, complete bool) {
			if !complete {
				triggered <- id
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go c.run(ctx, &wg)
	defer func() { cancel(); wg.Wait() }()

	// Checkpoint 1: one of the two instances acknowledges; the other's ack is lost.
	if id := <-triggered; id != 1 {
		t.Fatalf("first checkpoint %d, want 1", id)
	}
	c.acks <- ackMsg{id: 1, identity: "j/a/0", state: []byte("a1")}
	select {
	case err := <-failures:
		if !strings.Contains(err.Error(), "checkpoint 1: aborted") || !strings.Contains(err.Error(), "1 of 2") {
			t.Fatalf("failure %q, want checkpoint 1 aborted with 1 of 2 acknowledged", err)
		}
	case cp := <-sink.saved:
		t.Fatalf("checkpoint %d saved with an acknowledgement missing", cp.ID)
	case <-time.After(10 * time.Second):
		t.Fatal("checkpoint 1 neither aborted nor saved in 10s")
	}
	// The lost ack turns up late: it completes nothing.
	c.acks <- ackMsg{id: 1, identity: "j/a/1", state: []byte("late")}
	// Checkpoint 2 starts on the next tick and completes.
	if id := <-triggered; id != 2 {
		t.Fatalf("after the abort: checkpoint %d triggered, want 2", id)
	}
	c.acks <- ackMsg{id: 2, identity: "j/a/0", state: []byte("a2")}
	c.acks <- ackMsg{id: 2, identity: "j/a/1", state: []byte("b2")}
	select {
	case cp := <-sink.saved:
		if cp.ID != 2 || string(cp.States["j/a/0"]) != "a2" || string(cp.States["j/a/1"]) != "b2" {
			t.Fatalf("saved checkpoint %d %q, want 2 with both states", cp.ID, cp.States)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("checkpoint 2 not saved in 10s")
	}
	// The sink has it; the coordinator counts it once Save has returned.
	st := c.stats.snapshot()
	for deadline := time.Now().Add(10 * time.Second); (st.Completed == 0 || len(c.stats.recent()) < 2) && time.Now().Before(deadline); st = c.stats.snapshot() {
		time.Sleep(time.Millisecond)
	}
	if st.Failed != 1 || st.Completed != 1 || st.Last != 2 {
		t.Errorf("stats %+v, want 1 failed, 1 completed, last 2", st)
	}
	if h := c.stats.recent(); len(h) != 2 || h[0].ID != 1 || h[0].Error == "" || h[1].ID != 2 || h[1].Error != "" {
		t.Errorf("history %+v, want 1 aborted then 2 complete", h)
	}
}

func TestCheckpointTimeoutDefault(t *testing.T) {
	cfg := Config{Checkpoints: savedSink{}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.CheckpointTimeout != DefaultCheckpointTimeout {
		t.Errorf("timeout %v, want %v", cfg.CheckpointTimeout, DefaultCheckpointTimeout)
	}
	cfg = Config{Checkpoints: savedSink{}, CheckpointTimeout: -time.Second}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "checkpoint timeout -1s is negative") {
		t.Errorf("a negative timeout: %v", err)
	}
}
