package cluster

import (
	"errors"
	"testing"
)

func TestDirFence(t *testing.T) {
	dir := t.TempDir()
	f := NewDirFence(dir, "job")
	if err := f.Check("a"); err == nil {
		t.Error("Check before any claim = nil")
	}
	if err := f.Claim("a"); err != nil {
		t.Fatal(err)
	}
	if err := f.Check("a"); err != nil {
		t.Errorf("Check(holder) = %v", err)
	}
	// A newer run claims: the older one is fenced off, in another handle on the same dir.
	if err := NewDirFence(dir, "job").Claim("b"); err != nil {
		t.Fatal(err)
	}
	if err := f.Check("a"); !errors.Is(err, ErrFenced) {
		t.Errorf("Check(old holder) = %v, want ErrFenced", err)
	}
	if err := f.Check("b"); err != nil {
		t.Errorf("Check(new holder) = %v", err)
	}
	if err := NewDirFence(dir, "other").Check("b"); err == nil {
		t.Error("another job's fence is held by this job's token")
	}
}
