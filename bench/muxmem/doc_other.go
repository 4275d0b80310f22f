//go:build !linux

// Command muxmem measures procref's mux-mode memory; it reads /proc and so
// runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "muxmem reads /proc: Linux only")
	os.Exit(2)
}
