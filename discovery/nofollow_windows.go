//go:build windows

package discovery

// oNoFollow and oNonBlock are zero on Windows: Read refuses reparse points
// via Lstat first, and re-checks the opened file with Stat.
const (
	oNoFollow = 0
	oNonBlock = 0
)
