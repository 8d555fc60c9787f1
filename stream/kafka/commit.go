package kafka

import (
	"context"
	"log/slog"
	"maps"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
)

// committer commits a split's checkpointed offsets to a group in the background, for lag
// monitoring only: the latest offered set wins, and a failure is logged, never fatal.
type committer struct {
	adm    *kadm.Client
	group  string
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	// mu guards latest, the offsets not committed yet (nil when there are none).
	mu     sync.Mutex
	latest map[topicPartition]int64
}

func newCommitter(adm *kadm.Client, group string, logger *slog.Logger) *committer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &committer{adm: adm, group: group, logger: logger, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go c.run(ctx)
	return c
}

func (c *committer) offer(next map[topicPartition]int64) {
	c.mu.Lock()
	c.latest = maps.Clone(next)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *committer) run(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		next := c.latest
		c.latest = nil
		c.mu.Unlock()
		if len(next) == 0 {
			continue
		}
		var os kadm.Offsets
		for tp, off := range next {
			os.AddOffset(tp.topic, tp.partition, off, -1)
		}
		resps, err := c.adm.CommitOffsets(ctx, c.group, os)
		if err == nil {
			err = resps.Error()
		}
		if err != nil && ctx.Err() == nil {
			c.logger.Warn("kafka source: courtesy offset commit failed", "group", c.group, "err", err)
		}
	}
}

// close stops the loop and waits for it.
func (c *committer) close() {
	c.cancel()
	<-c.done
}
