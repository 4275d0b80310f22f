//go:build unix && !solaris

package platform

import (
	"os"

	"golang.org/x/sys/unix"
)

func (h dirHandle) link(path, oldName, newName string) error {
	if err := unix.Linkat(h.fd, oldName, h.fd, newName, 0); err != nil {
		return &os.LinkError{Op: "link", Old: path, New: newName, Err: err}
	}
	return nil
}
