//go:build !linux

package main

import (
	"errors"
	"net"
)

func setPipeSize(n int) error { return errors.ErrUnsupported }

func relayThreads(tc *net.TCPConn) error { return errors.ErrUnsupported }

func relayExecPoll(argv []string) error { return errors.ErrUnsupported }
