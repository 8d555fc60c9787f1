package persistence

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every BadgerDB and
// actor system a test opens must be closed. Nothing is ignored.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openTestBadger opens a Badger database in dir that logs to the test's output and is
// closed when the test ends.
func openTestBadger(t testing.TB, dir string, opts ...Option) *BadgerDB {
	t.Helper()
	opts = append([]Option{
		WithLogger(testLogger(t)),
		WithSync(SyncNever),
	}, opts...)
	db, err := OpenBadger(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
