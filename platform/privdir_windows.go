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

func (dirHandle) remove(path, _ string) error { return os.Remove(path) }

func (dirHandle) close() error { return nil }
