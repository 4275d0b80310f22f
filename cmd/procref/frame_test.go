package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/wire"
)

// TestOversizedFrameEndsSession: a window that announces a 10 GB message
// (mux mode; the host reads the editor's pipes itself, or the proxy relays
// with PROCREF_HANDOFF=0) gets a JSON-RPC error naming the size limit and
// its proxy exits 1 with a line on stderr at once, instead of hanging while
// the host skips 10 GB; the other window keeps working.
func TestOversizedFrameEndsSession(t *testing.T) {
	for _, handoff := range []string{"1", "0"} {
		t.Run("handoff="+handoff, func(t *testing.T) {
			e := newEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ws := t.TempDir()
			env := []string{"PROCREF_HANDOFF=" + handoff}
			other := e.start(ws, env, sampleServer("mux")...)
			oc := other.client(ctx)
			if _, err := oc.Initialize(ctx, ws); err != nil {
				t.Fatal(err)
			}
			p := e.start(ws, env, sampleServer("mux")...)
			init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"rootUri":"` + "file://" + ws + `"}}`
			if err := wire.Write(p.stdin, []byte(init)); err != nil {
				t.Fatal(err)
			}
			r := wire.NewReader(p.stdout, 0)
			b, err := r.Read()
			for err == nil && strings.Contains(string(b), `"window/logMessage"`) {
				b, err = r.Read() // a slow attach on a busy machine is announced first
			}
			if err != nil || !strings.Contains(string(b), `"result"`) {
				t.Fatalf("initialize: %s, %v; stderr: %s", b, err, p.stderr.String())
			}
			io.WriteString(p.stdin, "Content-Length: 10000000000\r\n\r\n{\"jsonrpc\":")
			var answer []byte
			for {
				b, err := r.Read()
				if err != nil {
					t.Fatalf("no error answer before the session ended: %v", err)
				}
				if strings.Contains(string(b), `"error"`) {
					answer = b
					break
				}
			}
			if !strings.Contains(string(answer), "size limit") || !strings.Contains(string(answer), "session ends") {
				t.Errorf("error answer %s, want the size limit and that the session ends", answer)
			}
			if code := p.wait(t, 5*time.Second); code != 1 {
				t.Errorf("proxy exit code %d, want 1", code)
			}
			if !p.stderrHas("procref logs") {
				t.Errorf("stderr lacks the line pointing at the log: %q", p.stderr.String())
			}
			if _, err := oc.Hover(ctx, "file://"+ws+"/a.txt", 0, 0); err != nil {
				t.Errorf("the other window after the oversized message: %v", err)
			}
			oc.Shutdown(ctx)
			oc.Close()
			other.wait(t, 10*time.Second)
		})
	}
}
