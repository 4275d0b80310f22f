package proctest

import (
	"os"
	"path/filepath"
	"testing"
)

// ForOtherUser returns a directory another uid can enter (it and its
// parent are 0755) holding a copy of the running test binary named name,
// so that a helper started with SysProcAttr.Credential can run it (the
// test's own binary may sit under a 0700 directory). Both are removed at
// cleanup.
func ForOtherUser(t testing.TB, name string) (dir, bin string) {
	t.Helper()
	dir = t.TempDir()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, name)
	if b, err := os.ReadFile(exe); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("copying the test binary: %v", err)
	}
	return dir, bin
}
