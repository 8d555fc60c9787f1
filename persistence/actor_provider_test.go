package persistence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// recorder is an event-sourced Proto.Actor actor: its state is the list of strings it was
// sent. Events are *wrapperspb.StringValue, snapshots *structpb.ListValue.
type recorder struct {
	protopersistence.Mixin
	values []string
}

type queryValues struct{}

func (a *recorder) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *protopersistence.RequestSnapshot:
		l := &structpb.ListValue{}
		for _, v := range a.values {
			l.Values = append(l.Values, structpb.NewStringValue(v))
		}
		a.PersistSnapshot(l)
	case *structpb.ListValue:
		a.values = a.values[:0]
		for _, v := range m.Values {
			a.values = append(a.values, v.GetStringValue())
		}
	case *wrapperspb.StringValue:
		if !a.Recovering() {
			a.PersistReceive(m) // persist first, then apply: a snapshot taken here excludes m
		}
		a.values = append(a.values, m.Value)
	case queryValues:
		ctx.Respond(slices.Clone(a.values))
	}
}

// runRecorder starts an actor system with one recorder named "recorder" on db, sends it
// values, and returns its state; it stops the actor and the system before returning.
func runRecorder(t *testing.T, db *BadgerDB, values ...string) []string {
	t.Helper()
	provider, err := NewActorProvider(db.Journal(), db.Snapshots(), ActorProviderConfig{
		SnapshotInterval: 3,
		KeepSnapshots:    2,
		OnError:          func(err error) { t.Errorf("actor provider: %v", err) },
		Logger:           testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	logger := testLogger(t)
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	defer sys.Shutdown()
	props := actor.PropsFromProducer(func() actor.Actor { return &recorder{} },
		actor.WithReceiverMiddleware(protopersistence.Using(provider)))
	pid, err := sys.Root.SpawnNamed(props, "recorder")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sys.Root.PoisonFuture(pid).Wait(); err != nil {
			t.Error(err)
		}
	}()
	for _, v := range values {
		sys.Root.Send(pid, wrapperspb.String(v))
	}
	res, err := sys.Root.RequestFuture(pid, queryValues{}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.([]string)
}

func TestActorProviderRecovers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	letters := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}

	db := openTestBadger(t, dir)
	if got := runRecorder(t, db, letters...); !slices.Equal(got, letters) {
		t.Fatalf("first run: %q", got)
	}
	// Event index i is seq i+1; snapshots were requested at indexes 0, 3, 6, 9, and the
	// newest two kept; the journal through the older one (6) is deleted.
	wantList(t, db.Snapshots(), "recorder", 6, 9)
	wantHighest(t, db.Journal(), "recorder", 10)
	wantSeqs := func(want ...uint64) {
		t.Helper()
		var got []uint64
		err := db.Journal().Replay(ctx, "recorder", 1, MaxSeq, func(seq uint64, _ []byte) error {
			got = append(got, seq)
			return nil
		})
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("journal seqs %v, %v; want %v", got, err, want)
		}
	}
	wantSeqs(7, 8, 9, 10)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A new process: a new actor system over the same directory.
	db = openTestBadger(t, dir)
	if got := runRecorder(t, db, "k"); !slices.Equal(got, append(letters, "k")) {
		t.Fatalf("after restart: %q", got)
	}
	letters = append(letters, "k")

	// The newest snapshot (seq 9) is corrupt: recovery falls back to seq 6 and replays
	// 7..11 from the journal.
	rewriteValue(t, db, seqKey("recorder", kindSnapshot, 9), flipByte(20))
	if got := runRecorder(t, db); !slices.Equal(got, letters) {
		t.Fatalf("after corrupt snapshot: %q", got)
	}
}

func TestActorProviderReportsMissingEvents(t *testing.T) {
	db := openTestBadger(t, t.TempDir())
	var errs []error
	p, err := NewActorProvider(db.Journal(), db.Snapshots(), ActorProviderConfig{OnError: func(err error) { errs = append(errs, err) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		p.PersistEvent("x", i, wrapperspb.String(fmt.Sprint(i)))
	}
	p.DeleteEvents("x", 1) // indexes 0 and 1, with no snapshot covering them
	var got []any
	p.GetEvents("x", 0, 0, func(e any) { got = append(got, e) })
	if len(got) != 0 || len(errs) != 1 {
		t.Fatalf("replayed %v with errors %v; want nothing and one error", got, errs)
	}
	p.GetEvents("x", 2, 3, func(e any) { got = append(got, e) })
	if len(got) != 1 || got[0].(*wrapperspb.StringValue).Value != "2" {
		t.Fatalf("GetEvents(2, 3) = %v", got)
	}
	p.PersistEvent("x", 2, wrapperspb.String("again"))
	if len(errs) != 2 || !errors.Is(errs[1], ErrSeqOrder) {
		t.Fatalf("persisting index 2 twice: errors %v, want ErrSeqOrder", errs)
	}
	if _, err := NewActorProvider(db.Journal(), db.Snapshots(), ActorProviderConfig{SnapshotInterval: -1}); err == nil {
		t.Fatal("negative snapshot interval: no error")
	}
}
