//go:build unix

package launcher_test

import (
	"context"
	"fmt"
	"log"
	"os/exec"
	"time"

	"github.com/procref/procref/launcher"
)

// The common case's two halves, as OnFirstAcquire and OnLastRelease use
// them: start a child bound to this process and learn its identity (pid
// and start time), then stop exactly that process. Runs as it is.
func ExampleStartChild() {
	info, err := launcher.StartChild(context.Background(), exec.Command("sleep", "60"), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("started, identity known:", info.PID > 0 && info.StartTime > 0)
	if err := launcher.StopChild(info, time.Second); err != nil {
		log.Fatal(err)
	}
	// The identity includes the start time, so a later process that reuses
	// the pid is never signalled; stopping again is not an error.
	fmt.Println("stopped twice:", launcher.StopChild(info, time.Second))
	// Output:
	// started, identity known: true
	// stopped twice: <nil>
}
