package actor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoint is a complete checkpoint: every instance's snapshot as of barrier ID.
type Checkpoint struct {
	ID int64
	// States holds the snapshot of each instance that has state, by identity
	// (job/stage/index). Instances that had finished, or hold nothing, are absent.
	States map[string][]byte
	// Finished lists the instances that had finished when the checkpoint reached them: all
	// their input was handled and their results sent.
	Finished map[string]bool
}

// CheckpointSink stores complete checkpoints: the persistence layer, in a real job. Save
// is called from one goroutine, in order of ID; a checkpoint counts as complete, and
// two-phase sinks commit it, only when Save returns nil.
type CheckpointSink interface {
	Save(ctx context.Context, cp Checkpoint) error
}

// CheckpointStats counts a job's checkpoints.
type CheckpointStats struct {
	Completed int64         `json:"completed"`
	Failed    int64         `json:"failed"`
	Last      int64         `json:"last"`
	Duration  time.Duration `json:"last_duration_ns"` // trigger to complete, of the last
	Bytes     int64         `json:"last_bytes"`       // state size of the last
}

// DefaultCheckpointTimeout is how long a checkpoint may take before it is aborted, unless
// Config.CheckpointTimeout says otherwise: Flink's default, long enough for a full snapshot
// of a large state to reach an object store, short enough that a lost acknowledgement
// costs minutes of checkpoints, not all of them.
const DefaultCheckpointTimeout = 10 * time.Minute

type ackMsg struct {
	id       int64
	identity string
	state    []byte
	finished bool
	err      error
}

// coordinator triggers checkpoints on an interval, one at a time, collects every
// instance's acknowledgement, saves the checkpoint and tells the instances it is complete
// (asynchronous barrier snapshotting, as Flink runs it). It runs on its own goroutine,
// owned by Job.Run.
type coordinator struct {
	sink     CheckpointSink
	interval time.Duration
	// timeout aborts a checkpoint not acknowledged by every instance in time (0: none).
	timeout time.Duration
	send    func(id int64, complete bool)
	total   int
	first   int64 // ids go on after this one (the checkpoint restored from)
	acks    chan ackMsg
	stats   *checkpointCounters
	// alignment returns the job's alignment time so far (nil: none counted).
	alignment func() time.Duration
	onError   func(err error)
	// fence, when set, says whether this run still holds the job (a cluster's ownership
	// epoch); onFenced ends a run that does not.
	fence    func() error
	onFenced func(err error)
	// requests asks for a checkpoint now (a savepoint); the answer is the first complete
	// checkpoint triggered after the request.
	requests chan chan<- checkpointResult
}

type checkpointResult struct {
	cp  Checkpoint
	err error
}

type waiter struct {
	minID int64
	ch    chan<- checkpointResult
}

// answer sends result to the waiters whose request came before checkpoint id started, and
// returns the others.
func (c *coordinator) answer(waiters []waiter, id int64, result checkpointResult) []waiter {
	kept := waiters[:0]
	for _, w := range waiters {
		if w.minID <= id {
			w.ch <- result
		} else {
			kept = append(kept, w)
		}
	}
	return kept
}

type checkpointCounters struct {
	completed, failed, last, duration, bytes atomic.Int64

	// mu guards history.
	mu      sync.Mutex
	history []CheckpointRecord // oldest first, at most historyLen
}

// historyLen bounds the checkpoints a job remembers for History.
const historyLen = 64

// CheckpointRecord is one checkpoint the coordinator took, complete or failed.
type CheckpointRecord struct {
	ID      int64     `json:"id"`
	Started time.Time `json:"started"`
	// Duration is from the trigger to the save (or the failure).
	Duration time.Duration `json:"duration_ns"`
	// Bytes is the size of the state saved.
	Bytes int64 `json:"bytes"`
	// Alignment is the time instances spent aligning this checkpoint's barriers, summed.
	Alignment time.Duration `json:"alignment_ns"`
	// Error is why it failed; "" when it completed.
	Error string `json:"error,omitempty"`
}

func (c *checkpointCounters) record(r CheckpointRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.history = append(c.history, r)
	if len(c.history) > historyLen {
		c.history = append(c.history[:0], c.history[len(c.history)-historyLen:]...)
	}
}

func (c *checkpointCounters) recent() []CheckpointRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CheckpointRecord{}, c.history...)
}

func (c *checkpointCounters) snapshot() CheckpointStats {
	return CheckpointStats{Completed: c.completed.Load(), Failed: c.failed.Load(), Last: c.last.Load(),
		Duration: time.Duration(c.duration.Load()), Bytes: c.bytes.Load()}
}

func (c *coordinator) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	var waiters []waiter
	defer func() {
		for _, w := range waiters {
			w.ch <- checkpointResult{err: fmt.Errorf("checkpoint: the job ended first: %w", context.Cause(ctx))}
		}
	}()
	var (
		id      = c.first
		waiting int
		states  map[string][]byte
		done    map[string]bool
		failed  error
		started time.Time
		aligned time.Duration
	)
	alignment := func() time.Duration {
		if c.alignment == nil {
			return 0
		}
		return c.alignment()
	}
	// deadline fires when the checkpoint under way has taken timeout.
	var deadline <-chan time.Time
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.NewTimer(c.timeout)
		timer.Stop()
		defer timer.Stop()
	}
	trigger := func() {
		id++
		waiting, states, done, failed, started = c.total, map[string][]byte{}, map[string]bool{}, nil, time.Now()
		aligned = alignment()
		if timer != nil {
			timer.Reset(c.timeout)
			deadline = timer.C
		}
		c.send(id, false)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			deadline = nil
			if waiting == 0 {
				continue
			}
			// Aborted: no manifest; late acknowledgements of it are ignored (waiting is 0),
			// and the next tick starts the next one.
			err := fmt.Errorf("checkpoint %d: aborted after %v: %d of %d instances acknowledged", id, c.timeout, c.total-waiting, c.total)
			waiting = 0
			c.stats.failed.Add(1)
			c.stats.record(CheckpointRecord{ID: id, Started: started, Duration: time.Since(started),
				Alignment: alignment() - aligned, Error: err.Error()})
			c.onError(err)
			waiters = c.answer(waiters, id, checkpointResult{err: err})
			if len(waiters) > 0 {
				trigger()
			}
		case ch := <-c.requests:
			waiters = append(waiters, waiter{minID: id + 1, ch: ch})
			if waiting == 0 {
				trigger()
			}
		case <-tick.C:
			if waiting > 0 {
				continue // the last one is still under way: checkpoints do not overlap
			}
			trigger()
		case a := <-c.acks:
			if a.id != id || waiting == 0 {
				continue
			}
			if a.err != nil && failed == nil {
				failed = a.err
			}
			if a.state != nil {
				states[a.identity] = a.state
			}
			if a.finished {
				done[a.identity] = true
			}
			waiting--
			if waiting > 0 {
				continue
			}
			deadline = nil
			if failed == nil && c.fence != nil {
				if err := c.fence(); err != nil {
					// Another run holds the job now: this one must neither save nor commit.
					c.stats.failed.Add(1)
					c.onFenced(fmt.Errorf("checkpoint %d: fenced off: %w", id, err))
					return
				}
			}
			if ctx.Err() != nil {
				return // the run failed or stopped meanwhile: a restart restores the one before
			}
			if failed == nil {
				failed = c.sink.Save(ctx, Checkpoint{ID: id, States: states, Finished: done})
				if failed != nil && ctx.Err() != nil {
					return // the save was cut off by the run's end, not a failure of its own
				}
			}
			if failed != nil {
				c.stats.failed.Add(1)
				c.stats.record(CheckpointRecord{ID: id, Started: started, Duration: time.Since(started),
					Alignment: alignment() - aligned, Error: failed.Error()})
				c.onError(failed)
				waiters = c.answer(waiters, id, checkpointResult{err: failed})
				if len(waiters) > 0 {
					trigger()
				}
				continue
			}
			var size int64
			for _, s := range states {
				size += int64(len(s))
			}
			c.stats.completed.Add(1)
			c.stats.last.Store(id)
			c.stats.duration.Store(int64(time.Since(started)))
			c.stats.bytes.Store(size)
			c.stats.record(CheckpointRecord{ID: id, Started: started, Duration: time.Since(started), Bytes: size,
				Alignment: alignment() - aligned})
			c.send(id, true)
			waiters = c.answer(waiters, id, checkpointResult{cp: Checkpoint{ID: id, States: states, Finished: done}})
			if len(waiters) > 0 {
				trigger() // asked for after this one started
			}
		}
	}
}
