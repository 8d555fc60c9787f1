package persistence

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// SnapshotObjects is implemented by checkpoint stores that keep snapshot data next to the
// checkpoints' manifests: each key group writes its snapshot straight to the store as a
// stream (an object, or a file), and a checkpoint's metadata then holds only handles to
// them (RunHandle). DirCheckpoints and BucketCheckpoints implement it.
//
// Keys are paths of segments of [A-Za-z0-9._%~-] separated by "/", none empty, "." or
// "..". CheckpointObjectKey and SavepointObjectKey name them so that retention can tell
// whose they are.
type SnapshotObjects interface {
	// CreateObject starts writing object key; nothing is visible under key until the
	// writer's Commit returns nil. Writing a key that exists replaces it.
	CreateObject(ctx context.Context, key string) (ObjectWriter, error)
	// OpenObject reads object key: ErrNotFound when there is none.
	OpenObject(ctx context.Context, key string) (io.ReadCloser, error)
	// ListObjects calls found with the key and size of every object whose key starts with
	// prefix, until found returns an error, which it returns.
	ListObjects(ctx context.Context, prefix string, found func(key string, size int64) error) error
	// DeleteObject deletes object key; deleting a missing one is not an error.
	DeleteObject(ctx context.Context, key string) error
}

// ObjectWriter writes one object as a stream, with bounded buffering.
type ObjectWriter interface {
	io.Writer
	// Commit makes the object visible, whole.
	Commit() error
	// Abort discards what was written; after Commit it does nothing.
	Abort()
}

// CheckpointObjectKey names object name of checkpoint n's snapshots: "chk-N/name", N in 20
// digits.
func CheckpointObjectKey(n uint64, name string) string {
	return fmt.Sprintf("%s%020d/%s", checkpointPrefix, n, name)
}

// SavepointObjectKey names object name of savepoint sp: "sp-SP/name". DeleteSavepoint
// deletes a savepoint's objects with it.
func SavepointObjectKey(sp, name string) string { return savepointObjectPrefix(sp) + name }

func savepointObjectPrefix(sp string) string { return "sp-" + sp + "/" }

// ObjectCheckpoint returns the checkpoint whose snapshots object key holds, if it is one
// of a checkpoint's (CheckpointObjectKey).
func ObjectCheckpoint(key string) (uint64, bool) {
	digits, ok := strings.CutPrefix(key, checkpointPrefix)
	if !ok || len(digits) < 21 || digits[20] != '/' {
		return 0, false
	}
	n, err := strconv.ParseUint(digits[:20], 10, 64)
	return n, err == nil
}

// checkObjectKey allows keys that are safe as relative file paths and object keys.
func checkObjectKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("object key %q: want 1 to 1024 bytes", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." || seg[0] == '.' {
			return fmt.Errorf("object key %q: an empty, \".\" or \"..\" segment, or one starting with '.'", key)
		}
		for _, c := range []byte(seg) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._%~-", c) >= 0) {
				return fmt.Errorf("object key %q: byte %q not allowed", key, c)
			}
		}
	}
	return nil
}

// objectsDir is where DirCheckpoints keeps snapshot objects: DIR/objects/KEY.
func (s *DirCheckpoints) objectPath(key string) (string, error) {
	if err := checkObjectKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.objects, filepath.FromSlash(key)), nil
}

var _ SnapshotObjects = (*DirCheckpoints)(nil)

// CreateObject implements SnapshotObjects: a temporary file in the object's directory,
// renamed into place (after an fsync) by Commit.
func (s *DirCheckpoints) CreateObject(ctx context.Context, key string) (ObjectWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := s.objectPath(key)
	if err != nil {
		return nil, fmt.Errorf("create snapshot object: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create snapshot object %s: %w", key, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create snapshot object %s: %w", key, err)
	}
	return &fileObject{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path}, nil
}

type fileObject struct {
	f    *os.File
	w    *bufio.Writer
	path string
	done bool
}

func (o *fileObject) Write(p []byte) (int, error) { return o.w.Write(p) }

func (o *fileObject) Commit() error {
	if o.done {
		return errors.New("commit snapshot object: already committed or aborted")
	}
	o.done = true
	err := o.w.Flush()
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(o.path))
	}
	if err != nil {
		os.Remove(o.f.Name())
		return fmt.Errorf("commit snapshot object %s: %w", o.path, err)
	}
	return nil
}

func (o *fileObject) Abort() {
	if o.done {
		return
	}
	o.done = true
	o.f.Close()
	os.Remove(o.f.Name())
}

// OpenObject implements SnapshotObjects.
func (s *DirCheckpoints) OpenObject(ctx context.Context, key string) (io.ReadCloser, error) {
	path, err := s.objectPath(key)
	if err != nil {
		return nil, fmt.Errorf("open snapshot object: %w", err)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot object %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open snapshot object: %w", err)
	}
	return f, nil
}

// ListObjects implements SnapshotObjects.
func (s *DirCheckpoints) ListObjects(ctx context.Context, prefix string, found func(key string, size int64) error) error {
	err := filepath.WalkDir(s.objects, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(s.objects, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		return found(key, info.Size())
	})
	if err != nil {
		return fmt.Errorf("list snapshot objects in %s: %w", s.objects, err)
	}
	return nil
}

// DeleteObject implements SnapshotObjects; a directory it leaves empty goes too.
func (s *DirCheckpoints) DeleteObject(ctx context.Context, key string) error {
	path, err := s.objectPath(key)
	if err != nil {
		return fmt.Errorf("delete snapshot object: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete snapshot object: %w", err)
	}
	for dir := filepath.Dir(path); dir != s.objects && strings.HasPrefix(dir, s.objects); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty (or gone): keep it
		}
	}
	return nil
}

// removeObjectTemps removes the temporary files that interrupted object writes left.
func (s *DirCheckpoints) removeObjectTemps() error {
	err := filepath.WalkDir(s.objects, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tempPrefix) {
			return os.Remove(path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove interrupted snapshot object writes: %w", err)
	}
	return nil
}

// deleteObjects deletes every object under prefix.
func deleteObjects(ctx context.Context, s SnapshotObjects, prefix string) error {
	var keys []string
	if err := s.ListObjects(ctx, prefix, func(key string, _ int64) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.DeleteObject(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

var _ SnapshotObjects = (*BucketCheckpoints)(nil)

const (
	// bucketPartSize is the part of an object a writer buffers before it uploads it (the
	// smallest part S3's multipart uploads allow), with one upload at a time per writer.
	bucketPartSize = 5 << 20
	// bucketWriters bounds how many objects a store writes at once, so that many key
	// groups snapshotting together hold at most bucketWriters × bucketPartSize in buffers.
	bucketWriters = 4
)

func (s *BucketCheckpoints) objectKey(key string) (string, error) {
	if err := checkObjectKey(key); err != nil {
		return "", err
	}
	return s.prefix + "objects/" + key, nil
}

// CreateObject implements SnapshotObjects: an upload in parts of 5 MiB, at most 4 objects
// of the store at a time (a fifth waits for one to end).
func (s *BucketCheckpoints) CreateObject(ctx context.Context, key string) (ObjectWriter, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, fmt.Errorf("create snapshot object: %w", err)
	}
	select {
	case s.writers <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("create snapshot object %s: %w", key, ctx.Err())
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := s.bucket.NewWriter(wctx, full, &blob.WriterOptions{
		ContentType:    "application/octet-stream",
		BufferSize:     bucketPartSize,
		MaxConcurrency: 1,
	})
	if err != nil {
		cancel()
		<-s.writers
		return nil, fmt.Errorf("create snapshot object %s%s: %w", s.where, "objects/"+key, err)
	}
	return &bucketObject{w: w, cancel: cancel, release: func() { <-s.writers }, where: s.where + "objects/" + key}, nil
}

type bucketObject struct {
	w       *blob.Writer
	cancel  context.CancelFunc
	release func()
	where   string
	done    bool
}

func (o *bucketObject) Write(p []byte) (int, error) { return o.w.Write(p) }

func (o *bucketObject) Commit() error {
	if o.done {
		return errors.New("commit snapshot object: already committed or aborted")
	}
	o.done = true
	defer o.release()
	defer o.cancel()
	if err := o.w.Close(); err != nil {
		return fmt.Errorf("put %s: %w", o.where, err)
	}
	return nil
}

func (o *bucketObject) Abort() {
	if o.done {
		return
	}
	o.done = true
	o.cancel() // a cancelled writer's Close writes nothing
	_ = o.w.Close()
	o.release()
}

// OpenObject implements SnapshotObjects.
func (s *BucketCheckpoints) OpenObject(ctx context.Context, key string) (io.ReadCloser, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, fmt.Errorf("open snapshot object: %w", err)
	}
	r, err := s.bucket.NewReader(ctx, full, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("snapshot object %sobjects/%s: %w", s.where, key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %sobjects/%s: %w", s.where, key, err)
	}
	return r, nil
}

// ListObjects implements SnapshotObjects.
func (s *BucketCheckpoints) ListObjects(ctx context.Context, prefix string, found func(key string, size int64) error) error {
	base := s.prefix + "objects/"
	it := s.bucket.List(&blob.ListOptions{Prefix: base + prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list snapshot objects in %sobjects/: %w", s.where, err)
		}
		if obj.IsDir {
			continue
		}
		if err := found(strings.TrimPrefix(obj.Key, base), obj.Size); err != nil {
			return err
		}
	}
}

// DeleteObject implements SnapshotObjects.
func (s *BucketCheckpoints) DeleteObject(ctx context.Context, key string) error {
	full, err := s.objectKey(key)
	if err != nil {
		return fmt.Errorf("delete snapshot object: %w", err)
	}
	return s.delete(ctx, full)
}
