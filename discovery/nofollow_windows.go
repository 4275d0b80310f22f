//go:build windows

package discovery

// oNoFollow is zero on Windows: Read refuses reparse points via Lstat first.
const oNoFollow = 0
