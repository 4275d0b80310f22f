package launcher_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
	"go.uber.org/goleak"
)

// TestMain is the program's main for every process these tests start:
//
//   - a supervisor: the test binary re-executed by an acquirer with
//     PROCREF_SUPERVISE set; launcher.Main runs it and exits;
//   - a helper (LAUNCHER_TEST_HELPER set): an acquirer, a toy service child,
//     or an unprivileged probe; runHelper runs it and exits;
//   - the test run itself, with temporary runtime and state dirs (each test
//     sets its own), checked for leaked goroutines at the end.
func TestMain(m *testing.M) {
	registerTestServices()
	if os.Getenv(noMainEnv) != "" {
		os.Exit(forgetMain())
	}
	launcher.Main()
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}

	base, err := os.MkdirTemp("", "procref-launcher-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("PROCREF_RUNTIME_DIR", filepath.Join(base, "run"))
	os.Setenv("PROCREF_STATE_DIR", filepath.Join(base, "state"))
	// Under -race a process sleeps 1 s at exit (atexit_sleep_ms) before it
	// really exits; the tests wait for supervisors to exit, so skip that in
	// the processes they start.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	cleanupExampleService()
	os.RemoveAll(base)
	os.Exit(code)
}

// noMainEnv makes a re-executed test binary skip launcher.Main and acquire
// the service it was started to supervise, as a program that forgot Main.
const noMainEnv = "LAUNCHER_TEST_NO_MAIN"

// forgetMain acquires the service named by EnvSupervise without having
// called launcher.Main; the acquire must fail.
func forgetMain() int {
	name := os.Getenv(launcher.EnvSupervise)
	svc := &launcher.Service{Name: name, Key: launcher.Key(name, os.Getenv("PROCREF_RUNTIME_DIR")), Hooks: launcher.Hooks{
		OnFirstAcquire: func(context.Context) (launcher.Info, error) { return launcher.Info{}, nil },
		OnLastRelease:  func(context.Context, launcher.Info) error { return nil },
	}}
	if _, err := svc.Acquire(context.Background()); err == nil {
		fmt.Fprintln(os.Stderr, "acquire without Main succeeded")
		return 1
	}
	return 3
}

// helperEnv selects a helper mode in a re-executed test binary.
const helperEnv = "LAUNCHER_TEST_HELPER"

// dirOf is this process's checked handle on the runtime dir path (the
// launcher's own, shared: never closed), or nil when it fails its check.
func dirOf(path string) *platform.PrivateDir {
	d, err := (&launcher.Service{Dir: path}).PrivateDir()
	if err != nil {
		return nil
	}
	return d
}
