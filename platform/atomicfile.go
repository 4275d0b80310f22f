package platform

import (
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with the bytes of src (mode perm) through a
// complete temporary file in the same directory and a rename, so a reader
// sees the old content or the new, never part of it. Concurrent writers
// each rename their own complete file; the last rename wins. On failure the
// temporary file is removed and path is unchanged. It does not fsync: it is
// for runtime state (hints, registries, rotated logs) that a power loss may
// lose but a crash must not tear.
func WriteFileAtomic(path string, perm os.FileMode, src io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err == nil {
		_, err = io.Copy(f, src)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
