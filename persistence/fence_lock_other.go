//go:build !unix

package persistence

import (
	"context"
	"fmt"
)

// lockFile is not offered here: a locked fence needs flock.
func lockFile(_ context.Context, path string) (func(), error) {
	return nil, fmt.Errorf("lock %s: file locks are not supported on this system: %w", path, ErrNoCompareAndSwap)
}
