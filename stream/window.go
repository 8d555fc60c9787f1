package stream

import (
	"errors"
	"fmt"
	"time"
)

// TimeWindow is a span of event time, [Start, End) in Unix ms.
type TimeWindow struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

func (w TimeWindow) String() string { return fmt.Sprintf("[%d,%d)", w.Start, w.End) }

// WindowResult is the result of one key's window.
type WindowResult[K comparable, R any] struct {
	Key   K     `json:"key"`
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	Value R     `json:"value"`
}

// WindowAssigner assigns records to windows by their timestamp (Tumbling, Hopping, Session,
// Sliding, Global). Windows are aligned to the epoch.
type WindowAssigner struct {
	kind  windowKind
	size  int64
	slide int64
}

type windowKind uint8

const (
	tumbling windowKind = iota + 1
	hopping
	session
	global
	sliding
)

// Tumbling windows are fixed, non-overlapping spans of size: [k·size, (k+1)·size).
func Tumbling(size time.Duration) WindowAssigner {
	return WindowAssigner{kind: tumbling, size: size.Milliseconds(), slide: size.Milliseconds()}
}

// Hopping windows are spans of size that start every slide (Flink's sliding windows): a
// record belongs to size/slide of them.
func Hopping(size, slide time.Duration) WindowAssigner {
	return WindowAssigner{kind: hopping, size: size.Milliseconds(), slide: slide.Milliseconds()}
}

// Session windows group a key's records that are less than gap apart: a record opens
// [ts, ts+gap), and sessions of a key that overlap or touch merge.
func Session(gap time.Duration) WindowAssigner {
	return WindowAssigner{kind: session, size: gap.Milliseconds()}
}

// Sliding windows are Kafka Streams' sliding windows: a window per record, covering the
// records of its key within diff before it, [ts−diff, ts] (in this package's half-open
// terms [ts−diff, ts+1)). A record also joins the windows of the key's records up to diff
// after it, when it arrives out of order. Each window fires like any other.
func Sliding(diff time.Duration) WindowAssigner {
	return WindowAssigner{kind: sliding, size: diff.Milliseconds()}
}

// Global is one window per key over all of time, [MinWatermark, MaxWatermark): it fires by
// a count or processing-time trigger, and at the end of input.
func Global() WindowAssigner { return WindowAssigner{kind: global, size: 1} }

// Validate reports windows that cannot work.
func (w WindowAssigner) Validate() error {
	switch {
	case w.kind == 0:
		return errors.New("windows: none chosen (use Tumbling, Hopping or Session)")
	case w.kind == sliding && w.size < 0:
		return fmt.Errorf("windows: sliding difference %dms is negative", w.size)
	case w.kind != sliding && w.size <= 0:
		return fmt.Errorf("windows: size %dms must be at least 1ms", w.size)
	case w.kind == hopping && (w.slide <= 0 || w.slide > w.size):
		return fmt.Errorf("windows: slide %dms must be in [1ms, size %dms]", w.slide, w.size)
	}
	return nil
}

func (w WindowAssigner) String() string {
	switch w.kind {
	case tumbling:
		return fmt.Sprintf("tumbling(%dms)", w.size)
	case hopping:
		return fmt.Sprintf("hopping(%dms, %dms)", w.size, w.slide)
	case session:
		return fmt.Sprintf("session(%dms)", w.size)
	case global:
		return "global"
	case sliding:
		return fmt.Sprintf("sliding(%dms)", w.size)
	}
	return "windows(none)"
}

// floorDiv rounds toward minus infinity, so that windows of negative timestamps align too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// AssignWindows appends the windows of a record at ts (Unix ms) to buf, earliest first. A
// sliding assigner's windows depend on the key's other records: it appends none.
func (w WindowAssigner) AssignWindows(ts int64, buf []TimeWindow) []TimeWindow {
	switch w.kind {
	case session:
		return append(buf, TimeWindow{ts, ts + w.size})
	case global:
		return append(buf, TimeWindow{MinWatermark, MaxWatermark})
	case sliding, 0:
		return buf
	default:
		// The windows holding ts start at multiples of slide in (ts-size, ts].
		last := floorDiv(ts, w.slide) * w.slide
		first := last
		for first-w.slide > ts-w.size {
			first -= w.slide
		}
		for start := first; start <= last; start += w.slide {
			buf = append(buf, TimeWindow{start, start + w.size})
		}
		return buf
	}
}

// IsSession reports whether the windows are session windows (they merge).
func (w WindowAssigner) IsSession() bool { return w.kind == session }

// IsSliding reports whether the windows are Kafka Streams' sliding windows (one per record).
func (w WindowAssigner) IsSliding() bool { return w.kind == sliding }

// IsGlobal reports whether the window is the global one.
func (w WindowAssigner) IsGlobal() bool { return w.kind == global }

// Size returns the windows' size (a session's gap, a sliding window's difference).
func (w WindowAssigner) Size() time.Duration { return time.Duration(w.size) * time.Millisecond }

// Trigger says when a window fires. The default fires when the watermark passes the
// window's end (and again for each record within lateness).
type Trigger struct {
	kind  triggerKind
	count int64
	early time.Duration
	purge bool
}

type triggerKind uint8

const (
	eventTimeTrigger triggerKind = iota
	countTrigger
	processingTimeTrigger
)

// EventTimeTrigger fires a window when the watermark passes its end: the default.
func EventTimeTrigger() Trigger { return Trigger{} }

// CountTrigger fires a window each time n more records have been added to it (with Global
// windows: every n records of a key). A window's remaining records fire when it is dropped
// and at the end of input, so that none is lost.
func CountTrigger(n int64) Trigger { return Trigger{kind: countTrigger, count: n} }

// ProcessingTimeTrigger fires a window when processing time (the clock, in Unix ms)
// reaches its end. Its state is still dropped by the watermark, after lateness; content not
// yet fired then fires.
func ProcessingTimeTrigger() Trigger { return Trigger{kind: processingTimeTrigger} }

// WithEarlyFirings makes an event-time trigger also fire a window every d of processing time
// while it is open and has changed since it last fired (speculative results before the
// watermark's final one).
func (t Trigger) WithEarlyFirings(d time.Duration) Trigger {
	t.early = d
	return t
}

// Purging makes each firing empty the window (fire and purge), so that the next firing
// covers only what came after; the default accumulates.
func (t Trigger) Purging() Trigger {
	t.purge = true
	return t
}

// IsEventTime reports whether the trigger fires on the watermark (the default).
func (t Trigger) IsEventTime() bool { return t.kind == eventTimeTrigger }

// IsProcessingTime reports whether the trigger fires on processing time.
func (t Trigger) IsProcessingTime() bool { return t.kind == processingTimeTrigger }

// Count returns the count of a count trigger, 0 for other triggers.
func (t Trigger) Count() int64 {
	if t.kind != countTrigger {
		return 0
	}
	return t.count
}

// EarlyFirings returns the interval of early firings, 0 for none.
func (t Trigger) EarlyFirings() time.Duration { return t.early }

// IsPurging reports whether each firing empties the window.
func (t Trigger) IsPurging() bool { return t.purge }

// Validate reports a trigger that cannot work.
func (t Trigger) Validate() error {
	switch {
	case t.kind == countTrigger && t.count < 1:
		return fmt.Errorf("count trigger of %d: want at least 1", t.count)
	case t.early < 0:
		return fmt.Errorf("early firings every %v: negative", t.early)
	case t.early > 0 && t.kind != eventTimeTrigger:
		return errors.New("early firings go with the event-time trigger only")
	}
	return nil
}
