package persistence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	protopersistence "github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ActorProviderConfig configures an ActorProvider.
type ActorProviderConfig struct {
	// SnapshotInterval is how many events an actor persists between snapshots: Proto.Actor
	// sends the actor a *persistence.RequestSnapshot when its event index is a multiple of
	// it. Smaller means faster recovery and more snapshot writes. Default (0): 100.
	SnapshotInterval int
	// KeepSnapshots is how many snapshots per actor are kept, the newest ones; older ones
	// and the journal they cover are deleted after each snapshot. More than one lets
	// recovery fall back when the newest is corrupt. Default (0): 2.
	KeepSnapshots int
	// OnError receives errors of the journal and snapshot store, which Proto.Actor's
	// provider interface cannot return. Default (nil): panic, which makes Proto.Actor's
	// supervisor restart the actor, and so recover it again from storage.
	OnError func(err error)
	// Logger receives a warning for each corrupt snapshot skipped in recovery.
	// Default (nil): slog.Default().
	Logger *slog.Logger
}

func (c *ActorProviderConfig) validate() error {
	if c.SnapshotInterval < 0 {
		return fmt.Errorf("snapshot interval %d: must not be negative", c.SnapshotInterval)
	}
	if c.KeepSnapshots < 0 {
		return fmt.Errorf("keep snapshots %d: must not be negative", c.KeepSnapshots)
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 100
	}
	if c.KeepSnapshots == 0 {
		c.KeepSnapshots = 2
	}
	if c.OnError == nil {
		c.OnError = func(err error) { panic(err) }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// ActorProvider implements Proto.Actor's persistence.Provider on a Journal and a
// SnapshotStore, so that an actor embedding persistence.Mixin and spawned with
// persistence.Using(provider) is event-sourced on them (on Badger: db.Journal() and
// db.Snapshots()).
//
// The actor's name is the identity. Events and snapshots are stored as protobuf Any, so
// their types must be linked into the program (registered in protoregistry.GlobalTypes)
// when it recovers. Proto.Actor's event index i is journal seq i+1; its snapshot at
// index i is the snapshot at seq i (the state after events 0..i-1, when the actor applies an
// event after PersistReceive).
type ActorProvider struct {
	journal   Journal
	snapshots SnapshotStore
	cfg       ActorProviderConfig
}

var (
	_ protopersistence.Provider      = (*ActorProvider)(nil)
	_ protopersistence.ProviderState = (*ActorProvider)(nil)
)

// NewActorProvider returns a provider on journal and snapshots.
func NewActorProvider(journal Journal, snapshots SnapshotStore, cfg ActorProviderConfig) (*ActorProvider, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("actor provider: %w", err)
	}
	return &ActorProvider{journal: journal, snapshots: snapshots, cfg: cfg}, nil
}

// GetState implements persistence.Provider.
func (p *ActorProvider) GetState() protopersistence.ProviderState { return p }

// Restart implements persistence.ProviderState. It does nothing: there is no cached state.
func (p *ActorProvider) Restart() {}

// GetSnapshotInterval implements persistence.ProviderState.
func (p *ActorProvider) GetSnapshotInterval() int { return p.cfg.SnapshotInterval }

// GetSnapshot implements persistence.ProviderState: it returns the newest intact snapshot,
// skipping (and logging) corrupt ones.
func (p *ActorProvider) GetSnapshot(actorName string) (snapshot any, eventIndex int, ok bool) {
	ctx := context.Background()
	loaded, err := LoadLatestValid(ctx, SnapshotsOf(p.snapshots, actorName))
	for _, c := range loaded.Skipped {
		p.cfg.Logger.Warn("skipped corrupt snapshot", "actor", actorName, "err", c)
	}
	if errors.Is(err, ErrNotFound) {
		return nil, 0, false
	}
	if err != nil {
		p.cfg.OnError(fmt.Errorf("recover actor %q: %w", actorName, err))
		return nil, 0, false
	}
	msg, err := unmarshalAny(loaded.Data)
	if err != nil {
		p.cfg.OnError(fmt.Errorf("recover actor %q: snapshot seq %d: %w", actorName, loaded.N, err))
		return nil, 0, false
	}
	return msg, int(loaded.N), true
}

// PersistSnapshot implements persistence.ProviderState. It saves the snapshot, keeps the
// newest KeepSnapshots, and deletes the journal that the oldest kept one covers.
func (p *ActorProvider) PersistSnapshot(actorName string, snapshotIndex int, snapshot proto.Message) {
	ctx := context.Background()
	if err := p.persistSnapshot(ctx, actorName, uint64(snapshotIndex), snapshot); err != nil {
		p.cfg.OnError(fmt.Errorf("persist snapshot of actor %q at %d: %w", actorName, snapshotIndex, err))
	}
}

func (p *ActorProvider) persistSnapshot(ctx context.Context, identity string, seq uint64, snapshot proto.Message) error {
	data, err := marshalAny(snapshot)
	if err != nil {
		return err
	}
	if err := p.snapshots.Save(ctx, identity, seq, data); err != nil {
		return err
	}
	if err := p.snapshots.Keep(ctx, identity, p.cfg.KeepSnapshots); err != nil {
		return err
	}
	seqs, err := p.snapshots.List(ctx, identity)
	if err != nil {
		return err
	}
	if len(seqs) > 0 && seqs[0] > 0 {
		return p.journal.DeleteTo(ctx, identity, seqs[0])
	}
	return nil
}

// DeleteSnapshots implements persistence.ProviderState.
func (p *ActorProvider) DeleteSnapshots(actorName string, inclusiveToIndex int) {
	if inclusiveToIndex < 0 {
		return
	}
	if err := p.snapshots.DeleteTo(context.Background(), actorName, uint64(inclusiveToIndex)); err != nil {
		p.cfg.OnError(fmt.Errorf("delete snapshots of actor %q: %w", actorName, err))
	}
}

// GetEvents implements persistence.ProviderState: it replays events with index in
// [eventIndexStart, eventIndexEnd), or to the end if eventIndexEnd is 0. A gap (events
// deleted that no surviving snapshot covers) is reported to OnError, not skipped.
func (p *ActorProvider) GetEvents(actorName string, eventIndexStart int, eventIndexEnd int, callback func(e any)) {
	from := uint64(max(eventIndexStart, 0)) + 1
	to := uint64(MaxSeq)
	if eventIndexEnd > 0 {
		to = uint64(eventIndexEnd)
	}
	next := from
	err := p.journal.Replay(context.Background(), actorName, from, to, func(seq uint64, data []byte) error {
		if seq != next {
			return fmt.Errorf("journal has seq %d where %d was expected: events are missing", seq, next)
		}
		next++
		msg, err := unmarshalAny(data)
		if err != nil {
			return fmt.Errorf("event seq %d: %w", seq, err)
		}
		callback(msg)
		return nil
	})
	if err != nil {
		p.cfg.OnError(fmt.Errorf("replay actor %q: %w", actorName, err))
	}
}

// PersistEvent implements persistence.ProviderState.
func (p *ActorProvider) PersistEvent(actorName string, eventIndex int, event proto.Message) {
	data, err := marshalAny(event)
	if err == nil {
		err = p.journal.Append(context.Background(), actorName, uint64(eventIndex)+1, data)
	}
	if err != nil {
		p.cfg.OnError(fmt.Errorf("persist event %d of actor %q: %w", eventIndex, actorName, err))
	}
}

// DeleteEvents implements persistence.ProviderState.
func (p *ActorProvider) DeleteEvents(actorName string, inclusiveToIndex int) {
	if inclusiveToIndex < 0 {
		return
	}
	if err := p.journal.DeleteTo(context.Background(), actorName, uint64(inclusiveToIndex)+1); err != nil {
		p.cfg.OnError(fmt.Errorf("delete events of actor %q: %w", actorName, err))
	}
}

func marshalAny(m proto.Message) ([]byte, error) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("wrap %T in Any: %w", m, err)
	}
	b, err := proto.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", m, err)
	}
	return b, nil
}

func unmarshalAny(b []byte) (proto.Message, error) {
	var a anypb.Any
	if err := proto.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("unmarshal Any: %w", err)
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("unmarshal %s: %w", a.GetTypeUrl(), err)
	}
	return m, nil
}
