package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ErrFenced is returned (wrapped) by a fenced write whose epoch is no longer the newest: a
// newer run has claimed the fence, and this run must stop committing.
var ErrFenced = errors.New("fenced: a newer run has claimed the epoch")

// ErrNoCompareAndSwap is returned (wrapped) by BucketFence on a bucket whose driver offers
// no conditional write on an object's ETag (only s3blob's does here).
var ErrNoCompareAndSwap = errors.New("the bucket offers no compare-and-swap (If-Match) writes; use an S3-compatible bucket")

// BucketFence gives each run of a job an epoch, claimed in one object of an S3-compatible
// bucket by compare-and-swap, and makes commits conditional on that epoch still being the
// newest, by the store's own precondition.
//
// The fence object holds the newest epoch, its holder's name, and the record of the last
// commit made under it (for example "checkpoint 42 is complete"). Claim reads the object
// and its ETag and writes epoch+1 with If-Match: ETag (If-None-Match: * when there is no
// object yet); of two runs that claim at once, the store accepts one write and answers
// the other 412, and the other reads again and claims the epoch after. Commit reads the
// object, and writes the new record with If-Match: the ETag of a version that holds this
// fence's epoch; a claim by a newer run changes the object, so the store refuses the write
// (412) and Commit returns an error wrapping ErrFenced.
//
// One run may span processes: the claimer tells the others its epoch and record, and they
// Enter it. Then several fences commit under one epoch; a 412 caused by another commit of
// the same epoch is not a fence, and the commit reads again and retries. Confirm is a
// commit that keeps the record: a write the store refuses once a newer epoch is claimed,
// made just before a commit that lives elsewhere (a sink's output), so that a run fenced
// off learns it before it commits, by the store's condition rather than by a read.
//
// What it guarantees: once Claim(e+1) has returned, no Commit or Confirm under an epoch
// <= e succeeds, however long that run was paused; every successful Commit is the newest
// record of the newest epoch at the instant the store applied it. This rests on the store
// applying conditional PUTs to one key linearizably (AWS S3 since 2024, SeaweedFS), and on
// distinct contents having distinct ETags (each write carries a new epoch or commit
// number).
//
// What it does not guarantee: it fences only what goes through Commit and Confirm. Objects
// a stale run writes elsewhere (snapshot data, a checkpoint's metadata under its own key,
// sink files) are not refused; they must become visible only through a committed record (as
// a checkpoint does when its number is committed), or be harmless to write twice. A Confirm
// that succeeded just before a claim lets its caller finish what it confirmed after the
// claim: that work must be what the newer run would do itself (a sink committing a
// checkpoint that completed), written so that doing it twice is harmless. It does not tell a
// stale run that it is stale until its next Commit (or Current), so a paused node may
// still emit uncommitted output; there are no leases or clocks. It does not choose who
// should run: the newest claimer wins, so a partitioned node that claims after the
// majority fences the majority; quorum is the caller's. On buckets other than S3 (memblob,
// fileblob, GCS, Azure here) Claim and Commit return ErrNoCompareAndSwap, but for a fence
// made by NewLockedBucketFence (a local directory, one machine).
//
// A BucketFence is safe for concurrent use; its methods serialise.
type BucketFence struct {
	bucket *blob.Bucket
	key    string
	where  string

	// mu guards the claimed epoch, the record as this fence last knew it, and fenced.
	mu     sync.Mutex
	epoch  uint64
	record []byte
	// fenced is closed once a commit under epoch found a newer one.
	fenced chan struct{}

	// lock, when set, makes each read-compare-write of the fence object one critical
	// section instead of a conditional PUT: for a bucket in a local directory
	// (NewLockedBucketFence).
	lock func(ctx context.Context) (unlock func(), err error)

	// afterRead, when set (by tests), runs between Commit's read and its conditional
	// write: a claim made there must be refused by the store's precondition.
	afterRead func()
}

// FenceState is what the fence object holds.
type FenceState struct {
	// Epoch is the newest claimed epoch (1 after the first claim).
	Epoch uint64 `json:"epoch"`
	// Holder names the run that claimed Epoch, for messages.
	Holder string `json:"holder"`
	// Commit counts the commits under Epoch (0 right after the claim).
	Commit uint64 `json:"commit"`
	// Record is the last committed record: the one of the previous epoch until the new
	// holder commits (a claim carries it over), nil before the first commit.
	Record []byte `json:"record,omitempty"`
}

// NewBucketFence returns the fence in object key of bucket; where names the bucket in
// errors ("s3://ckpt").
func NewBucketFence(bucket *blob.Bucket, key, where string) *BucketFence {
	return &BucketFence{bucket: bucket, key: key, where: redactURL(where) + "/" + key, fenced: make(chan struct{})}
}

// NewLockedBucketFence returns a fence in object key of a bucket in a local directory
// (fileblob, file:///DIR), for nodes on one machine: each read-compare-write of the fence
// object holds an exclusive lock (flock) on the file lockPath, so that a claim and a
// commit exclude each other as a conditional PUT makes them on S3. Nodes on different
// machines sharing a network file system must not rely on it (flock over NFS is not
// dependable): they use an S3 bucket.
func NewLockedBucketFence(bucket *blob.Bucket, key, where, lockPath string) *BucketFence {
	f := NewBucketFence(bucket, key, where)
	f.lock = func(ctx context.Context) (func(), error) { return lockFile(ctx, lockPath) }
	return f
}

// maxFenceRecord bounds a committed record: the fence object is read whole on every commit.
const maxFenceRecord = 64 << 10

// claimAttempts bounds how often Claim retries when other claims race it, and how often a
// commit retries when other commits of its epoch race it.
const claimAttempts = 16

// Claim makes holder the holder of a new epoch, one above any claimed before, and returns
// it. From then on, commits under older epochs fail. The last committed record is carried
// over: Record (and Current) show it to the new holder, which recovers from it.
func (f *BucketFence) Claim(ctx context.Context, holder string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var client *s3.Client
	if f.lock == nil && !f.bucket.As(&client) {
		return 0, fmt.Errorf("claim fence %s: %w", f.where, ErrNoCompareAndSwap)
	}
	unlock, err := f.acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("claim fence %s: %w", f.where, err)
	}
	defer unlock()
	for range claimAttempts {
		cur, etag, err := f.read(ctx)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, fmt.Errorf("claim fence %s: %w", f.where, err)
		}
		next := FenceState{Epoch: cur.Epoch + 1, Holder: holder, Record: cur.Record}
		err = f.write(ctx, next, etag)
		if errors.Is(err, errPrecondition) {
			continue // another claim came between the read and the write
		}
		if err != nil {
			return 0, fmt.Errorf("claim fence %s: %w", f.where, err)
		}
		f.enter(next.Epoch, next.Record)
		return next.Epoch, nil
	}
	return 0, fmt.Errorf("claim fence %s: %d attempts lost to concurrent claims", f.where, claimAttempts)
}

// Enter makes this fence commit under epoch, which another process claimed (the run's
// coordinator, on another node), starting from record, the record that claim carried over.
// It writes nothing: a later commit under an epoch that is no longer the newest fails as
// if this fence had claimed it.
func (f *BucketFence) Enter(epoch uint64, record []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enter(epoch, record)
}

func (f *BucketFence) enter(epoch uint64, record []byte) {
	if epoch != f.epoch {
		f.fenced = make(chan struct{})
	}
	f.epoch, f.record = epoch, slices.Clone(record)
}

// Epoch returns the epoch Claim took (or Enter gave), 0 before.
func (f *BucketFence) Epoch() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch
}

// Record returns the record as this fence knows it: the one its epoch started from (Claim
// or Enter), or the last it committed since.
func (f *BucketFence) Record() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.record)
}

// Fenced returns a channel closed once a commit under the current epoch found a newer one:
// the run must stop.
func (f *BucketFence) Fenced() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

// Check reads the fence object and returns an error wrapping ErrFenced when it holds a
// newer epoch than this fence's (closing Fenced). It is how a run learns, without
// committing, that it must stop; it guards nothing (a commit is refused by the store's
// condition, not by an earlier Check).
func (f *BucketFence) Check(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epoch == 0 {
		return fmt.Errorf("check fence %s: no epoch claimed", f.where)
	}
	cur, _, err := f.read(ctx)
	if err != nil {
		return fmt.Errorf("check fence %s epoch %d: %w", f.where, f.epoch, err)
	}
	if cur.Epoch != f.epoch {
		return f.fencedOff(fmt.Errorf("check fence %s epoch %d: %w (it holds epoch %d of %q)", f.where, f.epoch, ErrFenced, cur.Epoch, cur.Holder))
	}
	return nil
}

// Commit stores record as the newest commit, if this fence's epoch is still the newest:
// an error wrapping ErrFenced if a newer run has claimed the fence (the store refused the
// write, or the object already showed the newer epoch).
func (f *BucketFence) Commit(ctx context.Context, record []byte) error {
	if len(record) > maxFenceRecord {
		return fmt.Errorf("commit under fence %s epoch %d: record of %d bytes, want at most %d (commit a key, not the data)", f.where, f.Epoch(), len(record), maxFenceRecord)
	}
	return f.commit(ctx, record, true)
}

// Confirm writes the fence object anew, keeping its record, if this fence's epoch is still
// the newest: an error wrapping ErrFenced if it is not. A commit made elsewhere right after
// a nil Confirm was allowed when the store applied the Confirm.
func (f *BucketFence) Confirm(ctx context.Context) error {
	return f.commit(ctx, nil, false)
}

// commit writes the fence object with If-Match under this fence's epoch: with record when
// replace is set, else with the record it read.
func (f *BucketFence) commit(ctx context.Context, record []byte, replace bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epoch == 0 {
		return fmt.Errorf("commit under fence %s: no epoch claimed", f.where)
	}
	unlock, err := f.acquire(ctx)
	if err != nil {
		return fmt.Errorf("commit under fence %s epoch %d: %w", f.where, f.epoch, err)
	}
	defer unlock()
	for range claimAttempts {
		cur, etag, err := f.read(ctx)
		if err != nil {
			return fmt.Errorf("commit under fence %s epoch %d: %w", f.where, f.epoch, err)
		}
		if cur.Epoch != f.epoch {
			// A newer claim. The precondition below would refuse the write too; this only
			// saves the round trip. (A version with this epoch is this run's own: Claim's
			// compare-and-swap gives each epoch to one claimer, and Enter to its run.)
			return f.fencedOff(fmt.Errorf("commit under fence %s epoch %d: %w (it holds epoch %d of %q)", f.where, f.epoch, ErrFenced, cur.Epoch, cur.Holder))
		}
		if f.afterRead != nil {
			f.afterRead()
		}
		next := FenceState{Epoch: f.epoch, Holder: cur.Holder, Commit: cur.Commit + 1, Record: cur.Record}
		if replace {
			next.Record = record
		}
		err = f.write(ctx, next, etag)
		if errors.Is(err, errPrecondition) {
			// The object changed since it was read: a newer claim (the next read says so),
			// or another commit of this epoch from another node of the run.
			if now, _, rerr := f.read(ctx); rerr == nil && now.Epoch != f.epoch {
				return f.fencedOff(fmt.Errorf("commit under fence %s epoch %d: %w (the store refused the write: the object changed since it was read, to epoch %d of %q)", f.where, f.epoch, ErrFenced, now.Epoch, now.Holder))
			}
			// A few milliseconds apart, so that the nodes of a run committing at once do
			// not collide again.
			select {
			case <-ctx.Done():
				return fmt.Errorf("commit under fence %s epoch %d: %w", f.where, f.epoch, ctx.Err())
			case <-time.After(time.Duration(1+rand.IntN(8)) * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("commit under fence %s epoch %d: %w", f.where, f.epoch, err)
		}
		f.record = slices.Clone(next.Record)
		return nil
	}
	return fmt.Errorf("commit under fence %s epoch %d: %d attempts lost to concurrent commits", f.where, f.epoch, claimAttempts)
}

// acquire takes the lock of a locked fence (a no-op otherwise) and returns its release.
func (f *BucketFence) acquire(ctx context.Context) (func(), error) {
	if f.lock == nil {
		return func() {}, nil
	}
	return f.lock(ctx)
}

// fencedOff closes fenced (once per epoch) and returns err.
func (f *BucketFence) fencedOff(err error) error {
	select {
	case <-f.fenced:
	default:
		close(f.fenced)
	}
	return err
}

// Current returns what the fence object holds now: ErrNotFound before the first claim.
func (f *BucketFence) Current(ctx context.Context) (FenceState, error) {
	st, _, err := f.read(ctx)
	if err != nil {
		return FenceState{}, fmt.Errorf("read fence %s: %w", f.where, err)
	}
	return st, nil
}

// errPrecondition is the store's 412: the object was not what the condition said.
var errPrecondition = errors.New("precondition failed")

// read returns the fence object and the ETag of that very version (from one GET).
func (f *BucketFence) read(ctx context.Context) (FenceState, string, error) {
	r, err := f.bucket.NewReader(ctx, f.key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return FenceState{}, "", ErrNotFound
	}
	if err != nil {
		return FenceState{}, "", err
	}
	defer r.Close()
	var out s3.GetObjectOutput
	if f.lock == nil && (!r.As(&out) || aws.ToString(out.ETag) == "") {
		return FenceState{}, "", ErrNoCompareAndSwap
	}
	b, err := io.ReadAll(io.LimitReader(r, 2*maxFenceRecord))
	if err != nil {
		return FenceState{}, "", err
	}
	st, err := decodeFenceState(b)
	if err != nil {
		return FenceState{}, "", &CorruptError{Where: f.where, Reason: err.Error()}
	}
	return st, aws.ToString(out.ETag), nil
}

// decodeFenceState decodes a fence object: a frame holding FenceState as JSON, with an
// epoch of at least 1. The error's text is the reason for a CorruptError.
func decodeFenceState(b []byte) (FenceState, error) {
	payload, err := decodeFrame(b)
	if err != nil {
		return FenceState{}, err
	}
	var st FenceState
	if err := json.Unmarshal(payload, &st); err != nil {
		return FenceState{}, fmt.Errorf("fence record: %w", err)
	}
	if st.Epoch == 0 {
		return FenceState{}, errors.New("fence record: epoch 0, want at least 1")
	}
	return st, nil
}

// write puts st with If-Match: etag, or If-None-Match: * when etag is empty;
// errPrecondition when the store refuses it. A locked fence writes unconditionally: it
// holds the lock.
func (f *BucketFence) write(ctx context.Context, st FenceState, etag string) error {
	payload, err := json.Marshal(st)
	if err != nil {
		return err
	}
	opts := &blob.WriterOptions{ContentType: "application/octet-stream", IfNotExist: etag == "" && f.lock == nil}
	if etag != "" && f.lock == nil {
		opts.BeforeWrite = func(as func(any) bool) error {
			var in *transfermanager.UploadObjectInput
			if !as(&in) {
				return ErrNoCompareAndSwap
			}
			in.IfMatch = aws.String(etag)
			return nil
		}
	}
	err = f.bucket.WriteAll(ctx, f.key, appendFrame(nil, payload), opts)
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return errPrecondition
	}
	return err
}
