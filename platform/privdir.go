package platform

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotOurs reports a file inside a private dir that is not owned by us
// (planted, or reached through a swapped directory). It is wrapped with the
// path and how to remove it.
var ErrNotOurs = errors.New("file is not ours")

// PrivateDir is a private directory held open after its check: files in it
// are opened relative to the handle, never through the path again, so a
// directory swapped or renamed after the check cannot redirect them. Its
// methods are safe for concurrent use; the caller owns it and must Close it.
type PrivateDir struct {
	path string
	h    dirHandle
}

// OpenPrivateDir checks path as EnsurePrivateDir does (every directory
// above it, then path itself) without creating anything, opens it without
// following a symlink, and checks the opened directory again (owned by us,
// no group/other bits): what the handle names is the private dir even if
// path was swapped between the check and the open. It does not block.
func OpenPrivateDir(path string) (*PrivateDir, error) {
	if err := checkPrivateDir(path); err != nil {
		return nil, err
	}
	h, err := openDirHandle(path)
	if err != nil {
		return nil, err
	}
	return &PrivateDir{path: path, h: h}, nil
}

// Path returns the path the dir was opened by (for messages).
func (d *PrivateDir) Path() string { return d.path }

// OpenFile opens name, one path component, relative to the handle, never
// following a symlink (unix: openat with O_NOFOLLOW), then checks the opened
// file with fstat: it must be owned by us, or the error wraps ErrNotOurs. A
// missing file is an error wrapping os.ErrNotExist. Windows opens by path
// (reparse points are refused; the profile directory's ACL is relied on).
func (d *PrivateDir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("open %q in %s: not a single file name", name, d.path)
	}
	return d.h.openFile(filepath.Join(d.path, name), name, flag, perm)
}

// Close closes the handle.
func (d *PrivateDir) Close() error { return d.h.close() }
