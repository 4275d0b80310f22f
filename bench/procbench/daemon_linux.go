//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// goplsDaemons returns the pids of gopls daemons listening on a unix socket
// under dir (started by `gopls -remote=auto` with XDG_RUNTIME_DIR=dir), found
// by their command line in /proc: the forwarder starts them as
// `gopls serve -listen "unix;DIR/..." ...` (one argument or, as
// -listen=unix;..., two joined). dir is private to this run, so only daemons
// this run started match.
func goplsDaemons(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	mark := "unix;" + dir + string(filepath.Separator)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(b), "\x00") {
			if strings.HasPrefix(strings.TrimPrefix(arg, "-listen="), mark) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
