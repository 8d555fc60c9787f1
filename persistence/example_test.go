package persistence_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/eddyflow/eddy/persistence"
)

// The smallest use: journal events, snapshot, and recover (newest intact snapshot, then the
// journal after it).
func Example() {
	dir, _ := os.MkdirTemp("", "eddy-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := persistence.OpenBadger(dir, persistence.WithSync(persistence.SyncEvery(50*time.Millisecond)))
	if err != nil {
		log.Fatal(err)
	}
	journal, snapshots := db.Journal(), db.Snapshots()
	const id = "job/count/17"
	err = journal.AppendBatch(ctx, []persistence.Event{
		{Identity: id, Seq: 1, Data: []byte("+1")},
		{Identity: id, Seq: 2, Data: []byte("+1")},
	})
	if err != nil {
		log.Fatal(err)
	}
	// A snapshot of the state after seq 2 cuts the journal.
	_ = snapshots.Save(ctx, id, 2, []byte("count=2"))
	_ = journal.DeleteTo(ctx, id, 2)
	_ = journal.Append(ctx, id, 3, []byte("+5"))
	_ = db.Close()

	db, _ = persistence.OpenBadger(dir)
	defer db.Close()
	snap, err := persistence.LoadLatestValid(ctx, persistence.SnapshotsOf(db.Snapshots(), id))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("snapshot at %d: %s\n", snap.N, snap.Data)
	_ = db.Journal().Replay(ctx, id, snap.N+1, persistence.MaxSeq, func(seq uint64, data []byte) error {
		fmt.Printf("event %d: %s\n", seq, data)
		return nil
	})
	// Output:
	// snapshot at 2: count=2
	// event 3: +5
}

func ExampleDirCheckpoints() {
	dir, _ := os.MkdirTemp("", "eddy-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := persistence.OpenDirCheckpoints(dir)
	if err != nil {
		log.Fatal(err)
	}
	for n := uint64(1); n <= 4; n++ {
		_ = store.Write(ctx, n, fmt.Appendf(nil, "source offsets at checkpoint %d", n))
		_ = store.Keep(ctx, 2)
	}
	_ = store.WriteSavepoint(ctx, "before-v2", []byte("source offsets for the upgrade"))

	ns, _ := store.List(ctx)
	fmt.Println("checkpoints:", ns)
	latest, _ := persistence.LoadLatestValid(ctx, store)
	fmt.Printf("recover from %d: %s\n", latest.N, latest.Data)
	names, _ := store.ListSavepoints(ctx)
	fmt.Println("savepoints:", names)
	// Output:
	// checkpoints: [3 4]
	// recover from 4: source offsets at checkpoint 4
	// savepoints: [before-v2]
}

// tally is a Proto.Actor actor event-sourced through persistence.Mixin: its events are
// *wrapperspb.StringValue, its snapshots *wrapperspb.BytesValue (the words, space-separated).
type tally struct {
	protopersistence.Mixin
	words []string
}

func (a *tally) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *protopersistence.RequestSnapshot:
		a.PersistSnapshot(wrapperspb.Bytes([]byte(strings.Join(a.words, " "))))
	case *wrapperspb.BytesValue: // the snapshot
		a.words = strings.Fields(string(m.Value))
	case *wrapperspb.StringValue: // an event
		if !a.Recovering() {
			a.PersistReceive(m)
		}
		a.words = append(a.words, m.Value)
	case string: // a query
		ctx.Respond(strings.Join(a.words, " "))
	}
}

// An actor is event-sourced on Badger, stopped with its actor system, and recovered by a
// new actor system over the same directory.
func ExampleActorProvider() {
	dir, _ := os.MkdirTemp("", "eddy-example")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	run := func(words ...string) {
		db, err := persistence.OpenBadger(dir, persistence.WithLogger(quiet))
		if err != nil {
			log.Fatal(err)
		}
		defer db.Close()
		provider, err := persistence.NewActorProvider(db.Journal(), db.Snapshots(),
			persistence.ActorProviderConfig{SnapshotInterval: 2})
		if err != nil {
			log.Fatal(err)
		}
		sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
		defer sys.Shutdown()
		props := actor.PropsFromProducer(func() actor.Actor { return &tally{} },
			actor.WithReceiverMiddleware(protopersistence.Using(provider)))
		pid, _ := sys.Root.SpawnNamed(props, "tally")
		for _, w := range words {
			sys.Root.Send(pid, wrapperspb.String(w))
		}
		state, _ := sys.Root.RequestFuture(pid, "state?", time.Second).Result()
		fmt.Printf("state: %q\n", state)
		_ = sys.Root.PoisonFuture(pid).Wait()
	}
	run("to", "be", "or", "not", "to")
	run("be") // a new actor system and database handle: the actor recovers, then goes on
	// Output:
	// state: "to be or not to"
	// state: "to be or not to be"
}
