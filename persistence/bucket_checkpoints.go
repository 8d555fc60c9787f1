package persistence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// BucketCheckpoints is a CheckpointStore in an object-store bucket (gocloud.dev/blob: S3 and
// S3-compatible stores through s3blob, also GCS, Azure, a local directory through fileblob
// and memory through memblob), under a key prefix, so many jobs can share one bucket:
//
//	PREFIX checkpoints/chk-00000000000000000042   checkpoint 42 (20 digits: keys sort by number)
//	PREFIX savepoints/NAME.savepoint              savepoint NAME
//	PREFIX objects/KEY                            snapshot data a checkpoint's metadata refers to (SnapshotObjects)
//
// Each object is one frame (version, length, CRC-32C, metadata), as in DirCheckpoints, so a
// truncated or damaged object is a *CorruptError and LoadLatestValid falls back past it.
//
// Write and WriteSavepoint are create-if-absent by the store's own condition (an S3 PUT
// with If-None-Match: *, the same precondition on the other drivers): of two writers of
// the same checkpoint, exactly one succeeds and the other gets ErrExists, with no
// check-then-write gap. A PUT is atomic, so a crash leaves no partial object to clean up.
// Unlike DirCheckpoints, many processes may use one prefix at once; Keep and Delete are
// not conditional (deleting what another writer just wrote is the caller's to avoid).
type BucketCheckpoints struct {
	bucket *blob.Bucket
	prefix string
	// where names the bucket in errors and CorruptError.Where, e.g. "s3://ckpt/jobs/clicks/".
	where string
	// writers holds a token per snapshot object being written (at most bucketWriters).
	writers chan struct{}
}

var _ CheckpointStore = (*BucketCheckpoints)(nil)

// NewBucketCheckpoints returns the checkpoint store under prefix (empty, or ending in "/",
// such as "jobs/clicks/") in bucket. where names the bucket in errors, such as
// "s3://ckpt"; the caller keeps bucket open while the store is used and closes it after.
func NewBucketCheckpoints(bucket *blob.Bucket, prefix, where string) (*BucketCheckpoints, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("bucket checkpoint store: prefix %q must be empty or end in /", prefix)
	}
	return &BucketCheckpoints{bucket: bucket, prefix: prefix, where: strings.TrimSuffix(where, "/") + "/" + prefix,
		writers: make(chan struct{}, bucketWriters)}, nil
}

// OpenBucketCheckpoints opens the bucket at url (any scheme registered with gocloud.dev's
// blob.DefaultMux by an imported driver: import _ "gocloud.dev/blob/s3blob" for s3://) and
// returns the checkpoint store under prefix in it, and the bucket, which the caller closes.
//
//	s3://ckpt?region=eu-west-1                                         AWS S3
//	s3://ckpt?endpoint=http://10.0.0.5:8333&use_path_style=true&region=us-east-1  an S3-compatible server
func OpenBucketCheckpoints(ctx context.Context, url, prefix string) (*BucketCheckpoints, *blob.Bucket, error) {
	bucket, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("open checkpoint bucket %s: %w", redactURL(url), err)
	}
	s, err := NewBucketCheckpoints(bucket, prefix, redactURL(url))
	if err != nil {
		bucket.Close()
		return nil, nil, err
	}
	return s, bucket, nil
}

// redactURL drops a URL's query (which may hold an endpoint's credentials) for messages.
func redactURL(u string) string {
	before, _, _ := strings.Cut(u, "?")
	return before
}

func (s *BucketCheckpoints) checkpointKey(n uint64) string {
	return fmt.Sprintf("%scheckpoints/%s%020d", s.prefix, checkpointPrefix, n)
}

func (s *BucketCheckpoints) savepointKey(name string) (string, error) {
	if err := checkSavepointName(name); err != nil {
		return "", err
	}
	return s.prefix + "savepoints/" + name + savepointSuffix, nil
}

// Write implements CheckpointStore.
func (s *BucketCheckpoints) Write(ctx context.Context, n uint64, metadata []byte) error {
	if err := s.writeIfAbsent(ctx, s.checkpointKey(n), metadata); err != nil {
		return fmt.Errorf("write checkpoint %d: %w", n, err)
	}
	return nil
}

// List implements CheckpointStore.
func (s *BucketCheckpoints) List(ctx context.Context) ([]uint64, error) {
	var ns []uint64
	err := s.list(ctx, s.prefix+"checkpoints/"+checkpointPrefix, func(rest string) {
		if len(rest) != 20 {
			return
		}
		if n, err := strconv.ParseUint(rest, 10, 64); err == nil {
			ns = append(ns, n)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", s.where, err)
	}
	slices.Sort(ns)
	return ns, nil
}

// Load implements CheckpointStore.
func (s *BucketCheckpoints) Load(ctx context.Context, n uint64) ([]byte, error) {
	data, err := s.readFrame(ctx, s.checkpointKey(n))
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %d: %w", n, err)
	}
	return data, nil
}

// Keep implements CheckpointStore.
func (s *BucketCheckpoints) Keep(ctx context.Context, k int) error {
	return keepNewest(ctx, k, s.List, s.Delete)
}

// Delete implements CheckpointStore.
func (s *BucketCheckpoints) Delete(ctx context.Context, n uint64) error {
	if err := s.delete(ctx, s.checkpointKey(n)); err != nil {
		return fmt.Errorf("delete checkpoint %d: %w", n, err)
	}
	return nil
}

// WriteSavepoint implements CheckpointStore.
func (s *BucketCheckpoints) WriteSavepoint(ctx context.Context, name string, metadata []byte) error {
	key, err := s.savepointKey(name)
	if err == nil {
		err = s.writeIfAbsent(ctx, key, metadata)
	}
	if err != nil {
		return fmt.Errorf("write savepoint: %w", err)
	}
	return nil
}

// ListSavepoints implements CheckpointStore.
func (s *BucketCheckpoints) ListSavepoints(ctx context.Context) ([]string, error) {
	var names []string
	err := s.list(ctx, s.prefix+"savepoints/", func(rest string) {
		if name, ok := strings.CutSuffix(rest, savepointSuffix); ok && checkSavepointName(name) == nil {
			names = append(names, name)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list savepoints in %s: %w", s.where, err)
	}
	slices.Sort(names)
	return names, nil
}

// LoadSavepoint implements CheckpointStore.
func (s *BucketCheckpoints) LoadSavepoint(ctx context.Context, name string) ([]byte, error) {
	key, err := s.savepointKey(name)
	if err != nil {
		return nil, fmt.Errorf("load savepoint: %w", err)
	}
	data, err := s.readFrame(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("load savepoint %q: %w", name, err)
	}
	return data, nil
}

// DeleteSavepoint implements CheckpointStore.
func (s *BucketCheckpoints) DeleteSavepoint(ctx context.Context, name string) error {
	key, err := s.savepointKey(name)
	if err == nil {
		err = s.delete(ctx, key)
	}
	if err == nil {
		err = deleteObjects(ctx, s, savepointObjectPrefix(name))
	}
	if err != nil {
		return fmt.Errorf("delete savepoint %q: %w", name, err)
	}
	return nil
}

// writeIfAbsent writes payload, framed, to key unless key exists, by the store's
// precondition (If-None-Match: * on S3).
func (s *BucketCheckpoints) writeIfAbsent(ctx context.Context, key string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.bucket.WriteAll(ctx, key, appendFrame(make([]byte, 0, frameHeaderSize+len(payload)), payload), &blob.WriterOptions{
		ContentType: "application/octet-stream",
		IfNotExist:  true,
	})
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("%s%s: %w", s.where, strings.TrimPrefix(key, s.prefix), ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put %s%s: %w", s.where, strings.TrimPrefix(key, s.prefix), err)
	}
	return nil
}

// readFrame reads key and checks its frame.
func (s *BucketCheckpoints) readFrame(ctx context.Context, key string) ([]byte, error) {
	where := s.where + strings.TrimPrefix(key, s.prefix)
	b, err := s.bucket.ReadAll(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("%s: %w", where, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", where, err)
	}
	payload, err := decodeFrame(b)
	if err != nil {
		return nil, &CorruptError{Where: where, Reason: err.Error()}
	}
	return payload, nil
}

// list calls found with the rest of each key under prefix (not in a sub-"directory").
func (s *BucketCheckpoints) list(ctx context.Context, prefix string, found func(rest string)) error {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !obj.IsDir {
			found(strings.TrimPrefix(obj.Key, prefix))
		}
	}
}

// delete deletes key; a missing key is not an error.
func (s *BucketCheckpoints) delete(ctx context.Context, key string) error {
	err := s.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s%s: %w", s.where, strings.TrimPrefix(key, s.prefix), err)
	}
	return nil
}
