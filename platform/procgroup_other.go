//go:build !unix

package platform

import "os/exec"

// SetProcessGroup: on Windows the host's kill-on-close job object (see
// StartBound) ends the whole tree; nothing to set here.
func SetProcessGroup(cmd *exec.Cmd) {}

// KillProcessGroup is a no-op without unix process groups; the process
// itself is killed by its Backend.
func KillProcessGroup(pid int) error { return nil }

// ProcessGroupAlive reports false: there are no unix process groups.
func ProcessGroupAlive(pid int) bool { return false }

// LeadsProcessGroup reports false: there are no unix process groups.
func LeadsProcessGroup() bool { return false }
