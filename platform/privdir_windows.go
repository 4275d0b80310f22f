//go:build windows

package platform

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// dirHandle on Windows is only the path: files are opened by path, after
// refusing a reparse point; the per-user profile directory's ACL is relied
// on (documented limitation).
type dirHandle struct{}

func openDirHandle(string) (dirHandle, error) { return dirHandle{}, nil }

func (dirHandle) openFile(path, _ string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
		return nil, fmt.Errorf("%w: %s is a symlink or junction; remove it", ErrNotOurs, path)
	}
	return os.OpenFile(path, flag, perm)
}

func (dirHandle) rename(path, _, newName string) error {
	return os.Rename(path, filepath.Join(filepath.Dir(path), newName))
}

func (dirHandle) link(path, _, newName string) error {
	return os.Link(path, filepath.Join(filepath.Dir(path), newName))
}

func (dirHandle) remove(path, _ string) error { return os.Remove(path) }

func (dirHandle) close() error { return nil }

func (dirHandle) check(string) error { return nil }

func (dirHandle) stat(path, _ string) (fs.FileInfo, error) { return os.Lstat(path) }

func (dirHandle) names(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (dirHandle) chmod(string, os.FileMode) {}

// socketAddr on Windows is the path (AF_UNIX there has no handle-relative
// bind or connect); the peer check on both ends still applies.
func (dirHandle) socketAddr(path, name string) (string, error) {
	p := filepath.Join(path, name)
	if len(p) > MaxSocketPath() {
		return "", fmt.Errorf("the socket path %s is %d bytes, more than the %d a unix socket allows", p, len(p), MaxSocketPath())
	}
	return p, nil
}
