package discovery

import (
	"os"

	"github.com/procref/procref/platform"
)

// openHint opens the hint file of name relative to a handle on dir, which is
// checked first (every directory from the root down, then dir itself; an
// error wraps platform.ErrInsecureDir): a directory swapped after the check
// cannot redirect the open, and a hint that is not ours (fstat after open)
// is refused with platform.ErrNotOurs.
func openHint(dir, name string) (*os.File, error) {
	d, err := platform.OpenPrivateDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.OpenFile(name+".json", os.O_RDONLY|oNoFollow|oNonBlock, 0)
}
