package actor

import (
	"sync/atomic"
	"time"
)

// StageMetrics counts what happened in one vertex, over all its instances. Every outcome of
// a record has a counter, so that nothing is lost in silence: In = Out-side effects +
// DeadLetters for stateless chains.
type StageMetrics struct {
	// In counts records taken in (read from a split, or received in a batch).
	In atomic.Int64
	// Out counts records sent on to other vertices and written to sinks.
	Out atomic.Int64
	// DeadLetters counts records sent to the dead-letter output.
	DeadLetters atomic.Int64
	// Restarts counts failures of the vertex that ended a run for a restart from the last
	// completed checkpoint (ErrorPolicy RestartStage); graph.Job.Stats counts them over runs.
	Restarts atomic.Int64
	// Late counts records that came too late for every window they belong to.
	Late atomic.Int64
	// Batches counts batches sent.
	Batches atomic.Int64
	// BackpressureNanos is the time instances spent without credit, unable to go on.
	BackpressureNanos atomic.Int64
	// AlignmentNanos is the time instances spent aligning checkpoint barriers: from the
	// first channel's barrier to the last's.
	AlignmentNanos atomic.Int64
	// MaxQueuedBatches is the most batches any instance held received and not yet
	// processed: bounded by its senders × Credits, whatever the load.
	MaxQueuedBatches atomic.Int64

	watermarks watermarks
}

// watermarks holds each instance's input watermark (MinWatermark: none yet).
type watermarks []atomic.Int64

func (m *StageMetrics) noteWatermark(instance int, w int64) {
	if instance < len(m.watermarks) {
		m.watermarks[instance].Store(w)
	}
}

func (m *StageMetrics) noteQueued(n int) {
	for {
		cur := m.MaxQueuedBatches.Load()
		if int64(n) <= cur || m.MaxQueuedBatches.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// StageStats is a snapshot of StageMetrics.
type StageStats struct {
	Stage        string        `json:"stage"`
	Instances    int           `json:"instances"`
	In           int64         `json:"in"`
	Out          int64         `json:"out"`
	DeadLetters  int64         `json:"dead_letters"`
	Restarts     int64         `json:"restarts"`
	Late         int64         `json:"late"`
	Batches      int64         `json:"batches"`
	Backpressure time.Duration `json:"backpressure_ns"`
	Alignment    time.Duration `json:"alignment_ns"`
	MaxQueued    int64         `json:"max_queued_batches"`
	// Watermark is the lowest input watermark of the stage's instances, in Unix ms, and
	// HasWatermark says whether every instance has one yet. An ended input counts as
	// MaxWatermark.
	Watermark    int64 `json:"watermark"`
	HasWatermark bool  `json:"has_watermark"`
	// WatermarkLag is how far the watermark is behind processing time, when there is one.
	WatermarkLag time.Duration `json:"watermark_lag_ns"`
}

func (m *StageMetrics) snapshot(name string, instances int, now time.Time) StageStats {
	st := StageStats{
		Stage: name, Instances: instances,
		In: m.In.Load(), Out: m.Out.Load(), DeadLetters: m.DeadLetters.Load(),
		Restarts: m.Restarts.Load(), Late: m.Late.Load(), Batches: m.Batches.Load(),
		Backpressure: time.Duration(m.BackpressureNanos.Load()),
		Alignment:    time.Duration(m.AlignmentNanos.Load()),
		MaxQueued:    m.MaxQueuedBatches.Load(),
	}
	low, has := MaxWatermark, len(m.watermarks) > 0
	for i := range m.watermarks {
		w := m.watermarks[i].Load()
		if w == MinWatermark {
			has = false
		}
		low = min(low, w)
	}
	if has {
		st.Watermark, st.HasWatermark = low, true
		if low != MaxWatermark {
			st.WatermarkLag = now.Sub(time.UnixMilli(low))
		}
	}
	return st
}
