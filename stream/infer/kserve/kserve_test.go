package kserve_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eddyflow/eddy/stream/infer"
	"github.com/eddyflow/eddy/stream/infer/kserve"
	"github.com/eddyflow/eddy/stream/infer/kserve/kservetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// affine is the served model: out = [x0 + 2*x1, x0 - x1].
func affine(row []float32) []float32 { return []float32{row[0] + 2*row[1], row[0] - row[1]} }

func TestClient(t *testing.T) {
	srv := kservetest.NewServer("m", 2, infer.RowFunc(affine))
	defer srv.Close()
	ctx := context.Background()
	c, err := kserve.Dial(ctx, srv.URL, "m", kserve.Version("1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.InputWidth() != 2 {
		t.Errorf("input width %d from the metadata, want 2", c.InputWidth())
	}
	if err := c.Ready(ctx); err != nil {
		t.Error(err)
	}
	md, err := c.Metadata(ctx)
	if err != nil || md.Name != "m" || md.Inputs[0].Name != "features" {
		t.Errorf("metadata %+v, %v", md, err)
	}
	rows := [][]float32{{1, 2}, {3, -4}, {0.5, 0.25}}
	for range 100 {
		got, err := c.Infer(ctx, rows)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			if !slices.Equal(got[i], affine(r)) {
				t.Fatalf("row %d: %v, want %v", i, got[i], affine(r))
			}
		}
	}
	if n := srv.Conns.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests; want 1, reused", n)
	}

	// Errors: a 4xx is permanent, a 5xx is not, a deadline cuts a slow answer.
	_, err = c.Infer(ctx, [][]float32{{1, 2, 3}})
	if !infer.IsPermanent(err) || !strings.Contains(err.Error(), "row 0 has 3 values; want 2") {
		t.Errorf("a row too wide: %v", err)
	}
	if _, err := kserve.Dial(ctx, srv.URL, "other"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("dial an unknown model: %v", err)
	}
	if _, err := kserve.New(srv.URL, "m", kserve.Version("9"), kserve.Width(2)).Infer(ctx, rows); !infer.IsPermanent(err) {
		t.Errorf("an unknown version: %v; want a permanent error", err)
	}
	srv.SetFault(func(int64) kservetest.Fault { return kservetest.Fault{Status: 503} })
	_, err = c.Infer(ctx, rows)
	var se *kserve.StatusError
	if !errors.As(err, &se) || se.Code != 503 || infer.IsPermanent(err) {
		t.Errorf("a 503: %v; want a StatusError to retry", err)
	}
	srv.SetFault(func(int64) kservetest.Fault { return kservetest.Fault{Delay: 10 * time.Second} })
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Infer(dctx, rows)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("a slow answer past the deadline: %v after %v", err, time.Since(start))
	}
}
