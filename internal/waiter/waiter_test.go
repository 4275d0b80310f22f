package waiter_test

import (
	"errors"
	"testing"

	"github.com/procref/procref/internal/waiter"
)

// TestUnsupported: without a waiter for the system, Exec says so and does
// nothing.
func TestUnsupported(t *testing.T) {
	if waiter.Available() {
		t.Skip("this system has a waiter")
	}
	if err := waiter.Exec(t.TempDir(), nil, "x", ""); !errors.Is(err, waiter.ErrUnsupported) {
		t.Fatalf("Exec: %v, want ErrUnsupported", err)
	}
}
