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
	if err := singleName(name, d.path); err != nil {
		return nil, fmt.Errorf("open %w", err)
	}
	return d.h.openFile(filepath.Join(d.path, name), name, flag, perm)
}

// Rename renames oldName to newName, both single names in the dir,
// relative to the handle (unix: renameat), replacing newName atomically.
func (d *PrivateDir) Rename(oldName, newName string) error {
	for _, n := range []string{oldName, newName} {
		if err := singleName(n, d.path); err != nil {
			return err
		}
	}
	return d.h.rename(filepath.Join(d.path, oldName), oldName, newName)
}

// Remove removes the file name (not a directory) relative to the handle
// (unix: unlinkat). A missing file is an error wrapping os.ErrNotExist.
func (d *PrivateDir) Remove(name string) error {
	if err := singleName(name, d.path); err != nil {
		return err
	}
	return d.h.remove(filepath.Join(d.path, name), name)
}

func singleName(name, dir string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("%q in %s: not a single file name", name, dir)
	}
	return nil
}

// Close closes the handle.
func (d *PrivateDir) Close() error { return d.h.close() }
