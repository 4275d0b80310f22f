//go:build windows

package discovery

// oNonBlock is zero on Windows: Read refuses reparse points via Stat
// first, and re-checks the opened file with Stat.
const oNonBlock = 0
