package mux

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/procref/procref/internal/hostproto"
)

// A policy's names of the core's ends match the core's sentinels, and
// every end says the same in the end notice a relaying proxy reads back.
func TestEndReason(t *testing.T) {
	lspFailing := NewError("language server keeps failing", ErrServerFailing)
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{io.EOF, ""},
		{NewError("client sent exit", ErrClientDone), ""},
		{NewError("lsp multiplexer closed", ErrClosed), "the shared backend was stopped"},
		{fmt.Errorf("%w (3 restarts within 1m0s)", lspFailing), "language server keeps failing (3 restarts within 1m0s)"},
		{NewError("cannot start the server: exec: \"nope\": not found", ErrNotStarted), "cannot start the server"},
		{errors.New("the client stopped reading\nits messages"), "procref dropped this window: the client stopped reading"},
	} {
		got := EndReason(c.err)
		if c.want == "" && got != "" || !strings.HasPrefix(got, c.want) || strings.Contains(got, "\n") {
			t.Errorf("EndReason(%v) = %q, want %q…", c.err, got, c.want)
		}
		if got == "" {
			continue
		}
		tl := hostproto.NewTail()
		tl.Write(hostproto.EndNotice(got))
		if back := tl.EndReason(); back != got {
			t.Errorf("end notice read back %q, want %q", back, got)
		}
	}
}
