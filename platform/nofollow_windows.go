//go:build windows

package platform

// ONoFollow is 0 on Windows, which has no O_NOFOLLOW: callers that must
// refuse a link Lstat the path first (a reparse point is not followed
// then) and Stat the opened file.
const ONoFollow = 0
