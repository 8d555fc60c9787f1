package persistence

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrExists is returned (wrapped) when writing a checkpoint or savepoint that already exists.
var ErrExists = errors.New("already exists")

// A CheckpointStore keeps what must survive the loss of a node: the metadata of completed
// checkpoints, numbered by checkpoint, and savepoints, named by the user. A checkpoint or
// savepoint is written once, whole or not at all; List and ListSavepoints show only complete
// ones. The store does not interpret the metadata.
//
// DirCheckpoints is the local-directory implementation; an S3-compatible one can implement
// the same interface (an object PUT is atomic, so it needs no temporary files).
//
// A CheckpointStore is a Source: LoadLatestValid(ctx, store) returns the newest checkpoint
// that is intact.
type CheckpointStore interface {
	// Write stores checkpoint n's metadata, atomically; ErrExists if n exists.
	Write(ctx context.Context, n uint64, metadata []byte) error
	// List returns the complete checkpoints' numbers, oldest first.
	List(ctx context.Context) ([]uint64, error)
	// Load returns checkpoint n's metadata: ErrNotFound, or *CorruptError if it fails its
	// checks.
	Load(ctx context.Context, n uint64) ([]byte, error)
	// Keep deletes all but the newest k (k >= 1) checkpoints. Savepoints are not touched.
	Keep(ctx context.Context, k int) error
	// Delete deletes checkpoint n; deleting a missing one is not an error.
	Delete(ctx context.Context, n uint64) error

	// WriteSavepoint stores a savepoint's metadata, atomically; ErrExists if name exists.
	// Savepoints are kept until DeleteSavepoint.
	WriteSavepoint(ctx context.Context, name string, metadata []byte) error
	// ListSavepoints returns the savepoints' names, sorted.
	ListSavepoints(ctx context.Context) ([]string, error)
	// LoadSavepoint returns a savepoint's metadata: ErrNotFound or *CorruptError as Load.
	LoadSavepoint(ctx context.Context, name string) ([]byte, error)
	// DeleteSavepoint deletes a savepoint; deleting a missing one is not an error.
	DeleteSavepoint(ctx context.Context, name string) error
}

// DirCheckpoints is a CheckpointStore in a local directory:
//
//	DIR/checkpoints/chk-00000000000000000042   checkpoint 42 (20 digits, so names sort by number)
//	DIR/savepoints/NAME.savepoint              savepoint NAME
//	DIR/objects/KEY                            snapshot data a checkpoint's metadata refers to (SnapshotObjects)
//	DIR/*/.tmp-*                               a write in progress, or one a crash interrupted
//
// Each file is one frame (version, length, CRC-32C, metadata). A write goes to a temporary
// file in the same directory, is fsynced, renamed into place, and the directory fsynced: a
// crash leaves either the old state or the new, plus perhaps a temporary file, which
// OpenDirCheckpoints removes. One process at a time may use a directory.
type DirCheckpoints struct {
	checkpoints string
	savepoints  string
	// objects holds snapshot objects (SnapshotObjects): DIR/objects/KEY.
	objects string
}

var _ CheckpointStore = (*DirCheckpoints)(nil)

const (
	checkpointPrefix = "chk-"
	savepointSuffix  = ".savepoint"
	tempPrefix       = ".tmp-"
)

// OpenDirCheckpoints opens (creating if needed) a checkpoint store in dir, and removes
// temporary files that interrupted writes left.
func OpenDirCheckpoints(dir string) (*DirCheckpoints, error) {
	s := &DirCheckpoints{
		checkpoints: filepath.Join(dir, "checkpoints"),
		savepoints:  filepath.Join(dir, "savepoints"),
		objects:     filepath.Join(dir, "objects"),
	}
	for _, d := range []string{s.checkpoints, s.savepoints} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open checkpoint store: %w", err)
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("open checkpoint store: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tempPrefix) {
				if err := os.Remove(filepath.Join(d, e.Name())); err != nil {
					return nil, fmt.Errorf("open checkpoint store: remove interrupted write: %w", err)
				}
			}
		}
	}
	if err := s.removeObjectTemps(); err != nil {
		return nil, fmt.Errorf("open checkpoint store: %w", err)
	}
	return s, nil
}

func (s *DirCheckpoints) checkpointPath(n uint64) string {
	return filepath.Join(s.checkpoints, fmt.Sprintf("%s%020d", checkpointPrefix, n))
}

func (s *DirCheckpoints) savepointPath(name string) (string, error) {
	if err := checkSavepointName(name); err != nil {
		return "", err
	}
	return filepath.Join(s.savepoints, name+savepointSuffix), nil
}

// checkSavepointName allows names that are safe as file names and object keys everywhere.
func checkSavepointName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("savepoint name %q: want 1 to 128 of [A-Za-z0-9._-], not starting with '.' or '-'", name)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("savepoint name %q: byte %q not allowed, want [A-Za-z0-9._-]", name, c)
		}
	}
	return nil
}

// Write implements CheckpointStore.
func (s *DirCheckpoints) Write(ctx context.Context, n uint64, metadata []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeFileAtomic(s.checkpointPath(n), metadata); err != nil {
		return fmt.Errorf("write checkpoint %d: %w", n, err)
	}
	return nil
}

// List implements CheckpointStore.
func (s *DirCheckpoints) List(ctx context.Context) ([]uint64, error) {
	entries, err := os.ReadDir(s.checkpoints)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var ns []uint64
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), checkpointPrefix)
		if !ok || len(digits) != 20 || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns, nil
}

// Load implements CheckpointStore.
func (s *DirCheckpoints) Load(ctx context.Context, n uint64) ([]byte, error) {
	data, err := readFileFrame(s.checkpointPath(n))
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %d: %w", n, err)
	}
	return data, nil
}

// Keep implements CheckpointStore.
func (s *DirCheckpoints) Keep(ctx context.Context, k int) error {
	return keepNewest(ctx, k, s.List, s.Delete)
}

// Delete implements CheckpointStore.
func (s *DirCheckpoints) Delete(ctx context.Context, n uint64) error {
	if err := removeFile(s.checkpointPath(n)); err != nil {
		return fmt.Errorf("delete checkpoint %d: %w", n, err)
	}
	return nil
}

// WriteSavepoint implements CheckpointStore.
func (s *DirCheckpoints) WriteSavepoint(ctx context.Context, name string, metadata []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.savepointPath(name)
	if err == nil {
		err = writeFileAtomic(path, metadata)
	}
	if err != nil {
		return fmt.Errorf("write savepoint: %w", err)
	}
	return nil
}

// ListSavepoints implements CheckpointStore.
func (s *DirCheckpoints) ListSavepoints(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(s.savepoints)
	if err != nil {
		return nil, fmt.Errorf("list savepoints: %w", err)
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), savepointSuffix)
		if ok && e.Type().IsRegular() && checkSavepointName(name) == nil {
			names = append(names, name)
		}
	}
	return names, nil // os.ReadDir sorts by file name
}

// LoadSavepoint implements CheckpointStore.
func (s *DirCheckpoints) LoadSavepoint(ctx context.Context, name string) ([]byte, error) {
	path, err := s.savepointPath(name)
	if err != nil {
		return nil, fmt.Errorf("load savepoint: %w", err)
	}
	data, err := readFileFrame(path)
	if err != nil {
		return nil, fmt.Errorf("load savepoint %q: %w", name, err)
	}
	return data, nil
}

// DeleteSavepoint implements CheckpointStore.
func (s *DirCheckpoints) DeleteSavepoint(ctx context.Context, name string) error {
	path, err := s.savepointPath(name)
	if err == nil {
		err = removeFile(path)
	}
	if err == nil {
		err = deleteObjects(ctx, s, savepointObjectPrefix(name))
	}
	if err != nil {
		return fmt.Errorf("delete savepoint %q: %w", name, err)
	}
	return nil
}

// writeFileAtomic writes payload, framed, to path: temporary file, fsync, rename,
// directory fsync. It refuses to replace an existing file.
func writeFileAtomic(path string, payload []byte) (err error) {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s: %w", path, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(appendFrame(make([]byte, 0, frameHeaderSize+len(payload)), payload)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The existence check above and this rename are not one atomic step: the store
	// assumes one writer per directory (the job's checkpoint coordinator).
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func readFileFrame(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	payload, err := decodeFrame(b)
	if err != nil {
		return nil, &CorruptError{Where: path, Reason: err.Error()}
	}
	return payload, nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
