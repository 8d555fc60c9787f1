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
	// instances holds each instance's own counters, for the admin endpoint's drill-down.
	instances []InstanceMetrics
}

// InstanceMetrics counts what happened in one instance of a vertex. The runtime updates it
// from the instance's goroutine; readers load it from anywhere.
type InstanceMetrics struct {
	in, out, deadLetters, late atomic.Int64
	// queued is the batches received and not yet processed, now.
	queued atomic.Int64
	// inFlight is the batches sent and not yet credited back: the credits in use, now;
	// creditLimit what its output channels allow in all (destinations × Credits).
	inFlight, creditLimit atomic.Int64
	// backpressure is the time spent without credit, stalls that ended; stalledSince the
	// start of the stall under way (Unix ns), 0 when there is none.
	backpressure, stalledSince atomic.Int64
}

func newStageMetrics(instances int) *StageMetrics {
	m := &StageMetrics{watermarks: make(watermarks, instances), instances: make([]InstanceMetrics, instances)}
	for i := range m.watermarks {
		m.watermarks[i].Store(MinWatermark)
	}
	return m
}

// instance returns the counters of instance i.
func (m *StageMetrics) instance(i int) *InstanceMetrics {
	if i < len(m.instances) {
		return &m.instances[i]
	}
	return &InstanceMetrics{} // a StageMetrics made by hand, without per-instance counters
}

// InstanceStats is a snapshot of one instance's counters.
type InstanceStats struct {
	Index       int   `json:"index"`
	In          int64 `json:"in"`
	Out         int64 `json:"out"`
	DeadLetters int64 `json:"dead_letters"`
	Late        int64 `json:"late"`
	// Queued is the batches received and not yet processed, now.
	Queued int64 `json:"queued_batches"`
	// CreditsInUse is the batches sent and not yet credited back, now, of CreditLimit.
	CreditsInUse int64 `json:"credits_in_use"`
	CreditLimit  int64 `json:"credit_limit"`
	// Backpressure is the time spent without credit, the stall under way included.
	Backpressure time.Duration `json:"backpressure_ns"`
	// Watermark is the instance's input watermark (Unix ms), when HasWatermark.
	Watermark    int64 `json:"watermark"`
	HasWatermark bool  `json:"has_watermark"`
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
	// Queued and CreditsInUse sum the instances' batches queued and in flight now, and
	// CreditLimit the credits their output channels allow in all.
	Queued       int64 `json:"queued_batches"`
	CreditsInUse int64 `json:"credits_in_use"`
	CreditLimit  int64 `json:"credit_limit"`
	// PerInstance holds each instance's counters, in index order. On a cluster, the
	// instances that run on other nodes show zeros here.
	PerInstance []InstanceStats `json:"instances_detail"`
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
	for i := range m.instances {
		c := &m.instances[i]
		is := InstanceStats{Index: i, In: c.in.Load(), Out: c.out.Load(), DeadLetters: c.deadLetters.Load(), Late: c.late.Load(),
			Queued: c.queued.Load(), CreditsInUse: c.inFlight.Load(), CreditLimit: c.creditLimit.Load(),
			Backpressure: time.Duration(c.backpressure.Load())}
		if since := c.stalledSince.Load(); since != 0 {
			is.Backpressure += max(now.Sub(time.Unix(0, since)), 0)
		}
		if i < len(m.watermarks) {
			if w := m.watermarks[i].Load(); w != MinWatermark {
				is.Watermark, is.HasWatermark = w, true
			}
		}
		st.Queued += is.Queued
		st.CreditsInUse += is.CreditsInUse
		st.CreditLimit += is.CreditLimit
		st.PerInstance = append(st.PerInstance, is)
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
