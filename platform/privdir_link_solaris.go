package platform

import (
	"os"
	"path/filepath"
)

// link on Solaris and illumos goes by path (x/sys has no linkat there),
// after checking that the directory at the path is the handle's.
func (h dirHandle) link(path, _, newName string) error {
	dir := filepath.Dir(path)
	if err := h.samePath(dir); err != nil {
		return err
	}
	return os.Link(path, filepath.Join(dir, newName))
}
