// Two nodes in one process need two Proto.Actor remotes, whose Start races on grpc's global
// logger (inside the library): this test stays out of -race runs.

//go:build !race

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
)

// keyed-count on two in-process nodes over loopback gets the baseline's result.
func TestTwoNodes(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out bytes.Buffer
	if err := run(&out, "keyed-count", 300_000, 2, 1, 2, "memory", 0, "", "", quiet); err != nil {
		t.Fatal(err)
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Nodes != 2 {
		t.Fatalf("result %q (%v) does not describe a run on two nodes", out.String(), err)
	}
}
