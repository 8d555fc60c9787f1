package graph

import (
	"context"
	"errors"
	"fmt"

	"github.com/eddyflow/eddy/internal/admin"
)

func init() {
	admin.JobState = func(job any) admin.LocalState {
		if j, ok := job.(*Job); ok {
			return jobState{j}
		}
		return nil
	}
}

// jobState answers the admin endpoint's state queries (/state/{stage}) with Query and Scan,
// its errors marked with the HTTP status they get.
type jobState struct{ j *Job }

func (s jobState) QueryState(ctx context.Context, stage string, req admin.StateRequest) (admin.StateView, error) {
	r, err := s.j.Query(ctx, stage, req.Key)
	if err != nil {
		return admin.StateView{}, adminError(err)
	}
	return admin.StateView{Stage: stage, Key: req.Key, KeyGroup: r.KeyGroup, Value: r.Value, AsOf: admin.AsOf(r.AsOf)}, nil
}

func (s jobState) ScanState(ctx context.Context, stage string, req admin.StateRequest) (admin.ScanView, error) {
	r, err := s.j.Scan(ctx, stage, scanOf(req))
	if err != nil {
		return admin.ScanView{}, adminError(err)
	}
	v := admin.ScanView{Stage: stage, Entries: make([]admin.ScanEntry, len(r.Entries)), More: r.More, KeyGroups: r.KeyGroups, AsOf: admin.AsOf(r.AsOf)}
	for i, e := range r.Entries {
		v.Entries[i] = admin.ScanEntry(e)
	}
	return v, nil
}

func (s jobState) KeyGroupOf(stage, key string) (int, int, error) {
	kg, n, err := s.j.KeyGroupOf(stage, key)
	return kg, n, adminError(err)
}

func (s jobState) CheckScan(stage string, req admin.StateRequest) error {
	return adminError(s.j.CheckScan(stage, scanOf(req)))
}

// scanOf turns the bounds of a /state request into a Scan ("" leaves a side open).
func scanOf(req admin.StateRequest) Scan {
	s := Scan{Prefix: req.Prefix, Limit: req.Limit}
	if req.From != "" {
		s.From = req.From
	}
	if req.To != "" {
		s.To = req.To
	}
	return s
}

// adminError marks err with the status the admin endpoint answers it with.
func adminError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnknownStage), errors.Is(err, ErrNoState):
		return fmt.Errorf("%w: %w", admin.ErrNotFound, err)
	case errors.Is(err, ErrNotKeyed), errors.Is(err, ErrBadKey), errors.Is(err, ErrNotScannable), errors.Is(err, ErrBadScan):
		return fmt.Errorf("%w: %w", admin.ErrBadRequest, err)
	}
	return err
}
