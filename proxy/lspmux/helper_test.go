package lspmux

import "os"

// helperServer runs the fake server on this process's stdio (the test
// binary re-run with GO_WANT_HELPER_PROCESS=1), so that tests can exercise
// ExecBackend, and kill -9 on a real process.
func helperServer() {
	s := newFakeServer(nil, 1, os.Getenv("FAKE_CAPS"))
	s.stdin, s.out = os.Stdin, os.Stdout
	s.run()
}
