package discovery

import (
	"errors"
	"math/rand/v2"
	"os"
	"strconv"

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

// createTemp creates a new 0600 file prefix+random in d (O_EXCL, retried on
// a name clash) and returns it with its name.
func createTemp(d *platform.PrivateDir, prefix string) (*os.File, string, error) {
	for range 100 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		f, err := d.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", errors.New("no free temporary name in " + d.Path())
}
