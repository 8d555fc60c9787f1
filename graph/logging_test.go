package graph_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/eddyflow/eddy/graph"
	"github.com/eddyflow/eddy/stream"
)

// lockedBuffer is a bytes.Buffer for loggers used from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proto.Actor logs "actor system started" at Info; a user's Info logger must not see it
// unless the user asks for Proto.Actor's lines.
func TestProtoActorInfoLinesStayOutOfTheUsersLog(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ownLogger bool
		protoLine bool // whether Proto.Actor's own logger gets the line
	}{
		{"default", false, false},
		{"own Proto.Actor logger", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var user, proto lockedBuffer
			opts := []graph.JobOption{graph.Parallelism(1), graph.Logger(slog.New(slog.NewTextHandler(&user, &slog.HandlerOptions{Level: slog.LevelInfo})))}
			if tc.ownLogger {
				opts = append(opts, graph.ProtoActorLogger(slog.New(slog.NewTextHandler(&proto, &slog.HandlerOptions{Level: slog.LevelInfo}))))
			}
			g := graph.New("quiet")
			graph.From(g, count(10)).To(stream.NewCollectSink[int64]())
			if err := g.Run(context.Background(), opts...); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(user.String(), "actor system started") {
				t.Errorf("the user's log has Proto.Actor's Info line:\n%s", user.String())
			}
			if got := strings.Contains(proto.String(), "actor system started"); got != tc.protoLine {
				t.Errorf("Proto.Actor's own logger has its Info line: %v, want %v:\n%s", got, tc.protoLine, proto.String())
			}
		})
	}
}
