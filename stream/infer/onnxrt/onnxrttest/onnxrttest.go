// Package onnxrttest lets tests that need the ONNX Runtime library skip when it is missing
// on a developer's machine, and fail in CI.
package onnxrttest

import (
	"os"
	"testing"

	"github.com/eddyflow/eddy/stream/infer/onnxrt"
)

// Require fails t when the ONNX Runtime library is missing and CI=true or
// EDDY_REQUIRE_ONNXRUNTIME=1; otherwise a missing library skips t, saying how to install
// it.
func Require(t testing.TB) {
	t.Helper()
	if _, err := onnxrt.LibraryPath(); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("EDDY_REQUIRE_ONNXRUNTIME") == "1" {
			t.Fatalf("ONNX Runtime is required here (CI or EDDY_REQUIRE_ONNXRUNTIME=1): %v", err)
		}
		t.Skipf("skipped: the ONNX Runtime shared library is missing: %v", err)
	}
}
