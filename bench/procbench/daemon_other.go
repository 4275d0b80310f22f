//go:build !linux

package main

// goplsDaemons is not implemented off Linux: the gopls daemon started by
// `gopls -remote=auto` exits by itself after -remote.listen.timeout with no
// clients (procbench passes a short one).
func goplsDaemons(dir string) []int { return nil }
