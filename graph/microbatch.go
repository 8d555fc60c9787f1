package graph

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/eddyflow/eddy/actor"
)

// MicroBatch runs the job in processing-time micro-batches, as Spark Streaming's DStreams
// do, with the same operators as continuous mode: every interval, each source split reads
// what it has ready (at most MicroBatchRecords records, 100,000 by default), the job
// processes that batch, and, with Checkpoints, a checkpoint closes it: two-phase sinks
// commit the batch's output under the checkpoint's id, so each batch is committed
// atomically, exactly once. A batch that takes longer than the interval delays the next
// one. Records wait for their batch: latency is about the interval plus the batch's
// processing, against continuous mode's milliseconds. Micro-batch runs on one node.
func MicroBatch(interval time.Duration) JobOption {
	return func(c *actor.Config) { c.MicroBatch = positive(c, "micro-batch interval", interval) }
}

// MicroBatchRecords bounds how many records a source split reads in one micro-batch. n < 1
// is an error from Build.
func MicroBatchRecords(n int) JobOption {
	return func(c *actor.Config) { c.MicroBatchRecords = atLeastOne(c, "micro-batch records", n) }
}

// microBatches paces a job's source splits in batches and closes each batch with a
// checkpoint. The sources' tasks ask it how much they may read; run opens the batches.
type microBatches struct {
	interval time.Duration
	records  int64
	splits   int // source split instances of the job
	logger   *slog.Logger

	// mu guards the fields below it.
	mu    sync.Mutex
	batch int64         // the open batch; 0 before the first
	open  chan struct{} // closed when the next batch opens
	state map[actor.Identity]*splitPace
	// progress gets a value whenever a split finishes its part of a batch or its input.
	progress chan struct{}
	// done holds the processing time of each closed batch, from its opening to its commit.
	done []time.Duration
	// free lets the splits read without batches: after a batch could not be closed, the
	// job drains rather than waits for batches that will not come.
	free bool
}

// splitPace is where one split stands in the batches.
type splitPace struct {
	batch int64 // the batch left counts for
	left  int64 // records it may still read in batch
	full  bool  // it has read its part of batch (its limit, or all it had ready)
	ended bool  // its input is exhausted
}

func newMicroBatches(cfg *actor.Config, splits int) *microBatches {
	return &microBatches{interval: cfg.MicroBatch, records: int64(cfg.MicroBatchRecords), splits: splits, logger: cfg.Logger,
		open: make(chan struct{}), state: map[actor.Identity]*splitPace{}, progress: make(chan struct{}, 1)}
}

// pauseWait is how long a split that may not read waits for the next batch in one Read
// before it returns with nothing, so that its actor stays responsive (barriers, cancel).
const pauseWait = time.Millisecond

// allowance returns how many records split id may read now; 0 means none until the next
// batch, after a short wait for it.
func (m *microBatches) allowance(ctx context.Context, id actor.Identity) int64 {
	m.mu.Lock()
	sp := m.state[id]
	if sp == nil {
		sp = &splitPace{}
		m.state[id] = sp
	}
	if m.free {
		m.mu.Unlock()
		return m.records
	}
	if sp.batch != m.batch {
		sp.batch, sp.left, sp.full = m.batch, m.records, false
	}
	if m.batch > 0 && !sp.full && !sp.ended {
		left := sp.left
		m.mu.Unlock()
		return left
	}
	open := m.open
	m.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
	case <-time.After(pauseWait):
	}
	return 0
}

// took records that split id read n records, returning err.
func (m *microBatches) took(id actor.Identity, n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sp := m.state[id]
	if sp == nil || sp.batch != m.batch {
		return
	}
	sp.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF):
		sp.ended, sp.full = true, true
	case sp.left <= 0, n == 0 && err == nil: // its limit, or nothing more ready: its part is read
		sp.full = true
	default:
		return
	}
	select {
	case m.progress <- struct{}{}:
	default:
	}
}

// next opens batch n.
func (m *microBatches) next(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batch = n
	close(m.open)
	m.open = make(chan struct{})
}

// read reports whether every split has read its part of batch n, and whether every split's
// input has ended.
func (m *microBatches) read(n int64) (all, ended bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.state) < m.splits {
		return false, false
	}
	all, ended = true, true
	for _, sp := range m.state {
		all = all && (sp.ended || sp.batch == n && sp.full)
		ended = ended && sp.ended
	}
	return all, ended
}

// run opens batch after batch until ctx is done or every source has ended, closing each
// with a checkpoint of j when j takes them. A failed checkpoint ends the run of batches;
// the job itself reports what failed.
func (m *microBatches) run(ctx context.Context, j *actor.Job, checkpoints bool) {
	for n := int64(1); ; n++ {
		opened := time.Now()
		m.next(n)
		for {
			all, ended := m.read(n)
			if ended {
				return // the job ends by itself, with its final checkpoint
			}
			if all {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-m.progress:
			case <-time.After(pauseWait):
			}
		}
		if checkpoints {
			if _, err := j.Checkpoint(ctx); err != nil {
				if ctx.Err() == nil {
					m.logger.Warn("micro-batch: the checkpoint closing the batch failed; the sources read on without batches", "batch", n, "err", err)
				}
				m.mu.Lock()
				m.free = true
				close(m.open)
				m.open = make(chan struct{})
				m.mu.Unlock()
				return
			}
		}
		m.mu.Lock()
		m.done = append(m.done, time.Since(opened))
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(opened.Add(m.interval))):
		}
	}
}

// batches returns how long each closed batch took, from its opening to its commit.
func (m *microBatches) batches() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Duration(nil), m.done...)
}
