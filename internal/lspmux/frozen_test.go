package lspmux

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/mux"
)

// A window that reads nothing while its queue grows is disconnected after
// ClientFrozen (shortened here), long before its queue reaches
// ClientQueue; another window is unaffected.
func TestFrozenClientDropped(t *testing.T) {
	h := newHarness(t, func(cfg *Config, f *fakeFarm) {
		cfg.ClientFrozen = 50 * time.Millisecond
		cfg.ClientQueue = 1 << 30 // the byte bound must not be what drops it
	})
	good := h.join("good", "r")
	conn := h.rawClient("frozen")
	conn.Write(frameOf(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"rootUri":"file:///ws/r"}}`)) // never reads the answer
	payload := strings.Repeat("z", 512)
	go func() {
		for i := 0; ; i++ {
			msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"test/echo","params":%q}`, i+2, payload)
			if _, err := conn.Write(frameOf(msg)); err != nil {
				return
			}
		}
	}()
	if err := h.serveResult("frozen"); !errors.Is(err, mux.ErrClientFrozen) {
		t.Fatalf("ServeClient(frozen) = %v, want mux.ErrClientFrozen", err)
	}
	if got, err := good.call(h.ctx, "test/echo", "after"); err != nil || string(got) != `"after"` {
		t.Fatalf("good client after the frozen one: %s, %v", got, err)
	}
}
