//go:build !unix

package lspmux

import "errors"

func freeze(pid int) error { return errors.New("freeze: not supported on this platform") }
