// Package proctest holds what procref's process-level tests share: building
// the real procref binary, copying fixtures, and a goroutine-safe buffer for
// a child's output. It is for tests only.
package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// BuildProcref builds cmd/procref into dir (with -race when race is set, so
// the proxies and hosts a race-enabled test starts are checked too;
// otherwise with CGO_ENABLED=0, as the README builds it) and returns the
// binary's path. It is meant for TestMain, hence no testing.T.
func BuildProcref(dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "procref")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/procref/procref/cmd/procref")
	cmd := exec.Command("go", args...)
	if !race {
		// As the README builds it: static, no dynamic loader.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building procref: %v\n%s", err, out)
	}
	return bin, nil
}

// CopyTree copies the fixture tree src into dst (created as needed).
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// SyncBuffer collects a child's output; safe for concurrent Write and String.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
