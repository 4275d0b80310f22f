//go:build !linux

package proxy

import (
	"os"
	"testing"
)

func nonblocking(t *testing.T, f *os.File) bool { return false }

func setBlocking(t *testing.T, f *os.File) {}
