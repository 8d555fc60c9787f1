package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DirFence fences a job's writes with a token in a directory every node reaches (the
// checkpoint store's): the coordinator of each run claims the fence at the start, and
// checks before every checkpoint it saves that the token is still its own. A coordinator of
// an older run (a node cut off from the others, still running) finds a newer token and
// stops, so two runs never both commit. A shared directory has no compare-and-swap: a claim
// and an older run's check may cross within a few microseconds; a store with conditional
// writes (S3, etcd) closes that gap.
type DirFence struct {
	path string
}

// NewDirFence returns the fence of job in dir.
func NewDirFence(dir, job string) *DirFence {
	return &DirFence{path: filepath.Join(dir, "fence-"+job)}
}

// Claim makes token the holder of the fence (atomically: a temporary file renamed).
func (f *DirFence) Claim(token string) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".fence-*")
	if err != nil {
		return fmt.Errorf("claim fence: %w", err)
	}
	_, err = tmp.WriteString(token)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("claim fence: %w", err)
	}
	return nil
}

// ErrFenced says a newer run holds the fence.
var ErrFenced = errors.New("a newer run holds the job")

// Check returns nil when token holds the fence, an error wrapping ErrFenced when another
// does.
func (f *DirFence) Check(token string) error {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("check fence: %w", err)
	}
	if string(b) != token {
		return fmt.Errorf("%w (%q, not %q)", ErrFenced, b, token)
	}
	return nil
}
