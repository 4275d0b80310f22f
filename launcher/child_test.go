package launcher_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// StartChild returns the child's exact identity; StopChild stops it, and
// refuses to signal a process whose start time does not match (a reused
// pid).
func TestStartStopChild(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := launcher.StartChild(ctx, exec.Command("sleep", "30"), nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := platform.Lookup(info.PID)
	if err != nil || id.StartTime != info.StartTime || info.StartTime == 0 {
		t.Fatalf("info %+v, process %v (%v): want its pid and start time", info, id, err)
	}
	forged := info
	forged.StartTime++
	launcher.StopChild(forged, time.Second)
	if !id.Alive() {
		t.Fatal("StopChild signalled a process whose start time differs")
	}
	if err := launcher.StopChild(info, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if id.Alive() {
		t.Fatal("the child is alive after StopChild")
	}
	if err := launcher.StopChild(info, time.Second); err != nil {
		t.Errorf("StopChild of a gone process = %v, want nil", err)
	}
	// A child that exits before it is ready is an error, at once.
	_, err = launcher.StartChild(ctx, exec.Command("false"), func(context.Context) error { return context.DeadlineExceeded })
	if err == nil {
		t.Error("StartChild of a child that exits at once succeeded")
	}
}
