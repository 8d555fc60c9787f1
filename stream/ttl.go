package stream

import (
	"fmt"
	"time"
)

// TTL bounds how long a key's state lives after its key was last seen, so that keyed state
// cannot grow forever: in event time (measured against the watermark, by records'
// timestamps) or in processing time (by the clock). The zero TTL keeps state forever.
type TTL struct {
	d         time.Duration
	eventTime bool
}

// EventTimeTTL drops a key's state once the watermark is d past the timestamp of the key's
// last record.
func EventTimeTTL(d time.Duration) TTL { return TTL{d: d, eventTime: true} }

// ProcessingTimeTTL drops a key's state d of processing time after its last record.
func ProcessingTimeTTL(d time.Duration) TTL { return TTL{d: d} }

// Enabled reports whether the TTL drops anything.
func (t TTL) Enabled() bool { return t.d > 0 }

// Duration returns how long state lives after its key was last seen.
func (t TTL) Duration() time.Duration { return t.d }

// EventTime reports whether the TTL runs on event time.
func (t TTL) EventTime() bool { return t.eventTime }

// Validate reports a TTL that cannot work.
func (t TTL) Validate() error {
	if t.d < 0 {
		return fmt.Errorf("state TTL %v is negative", t.d)
	}
	return nil
}
