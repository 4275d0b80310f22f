//go:build linux

package launcher_test

// Issue 24 item 5: the first user is killed right after it started the
// supervisor; the next user joins or takes over that start.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
)

// supervisorPIDs lists the live supervisors of name in the runtime dir
// run: processes started with PROCREF_SUPERVISE=name and that dir.
func supervisorPIDs(name, run string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := bytes.Split(b, []byte{0})
		sup, dir := false, false
		for _, v := range vars {
			sup = sup || string(v) == launcher.EnvSupervise+"="+name
			dir = dir || string(v) == "PROCREF_RUNTIME_DIR="+run
		}
		if sup && dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Must show: 50 times, kill -9 of the first acquirer as soon as its
// supervisor process exists; the next Acquire works (never "another
// supervisor is running"), one copy only, and after the release nothing is
// left: no supervisor, no semaphore set, no file.
func TestStarterKilledRightAfterSpawn(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toySlowName)
	rounds := 50
	if testing.Short() {
		rounds = 5
	}
	for i := range rounds {
		ps := startAcquirers(t, e, 1, toySlowName)
		ps[0].send(t, "acquire")
		// No event for it: poll, bounded.
		proctest.Eventually(t, 30*time.Second, fmt.Sprintf("round %d: a supervisor started", i), func() bool {
			return len(supervisorPIDs(svc.Name, e.run)) > 0
		})
		ps[0].cmd.Process.Kill()
		ps[0].cmd.Wait()

		h, err := svc.Acquire(testCtx(t, time.Minute))
		if err != nil {
			t.Fatalf("round %d: Acquire after the starter was killed: %v", i, err)
		}
		h.Release()
		proctest.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: nothing left after the release", i), func() error {
			sups, files := supervisorPIDs(svc.Name, e.run), serviceFiles(t, e.run, svc.Name)
			if len(sups) != 0 || len(files) != 0 {
				return fmt.Errorf("supervisors %v, files %v", sups, files)
			}
			return nil
		})
		if n := semSets(t, e.run, svc.Key); n != 0 {
			t.Fatalf("round %d: %d semaphore sets left", i, n)
		}
	}
	if n := e.count("double"); n != 0 {
		t.Errorf("a second copy was started %d times", n)
	}
}
