package hostproto

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBackendAddr: what the tcp-mode host writes is what the proxy reads;
// anything else is refused with what was expected.
func TestBackendAddr(t *testing.T) {
	for _, a := range []Addr{{"unix", "/run/user/1/procref/gopls-0123.42.sock"}, {"tcp", "127.0.0.1:4242"}} {
		h, p := net.Pipe()
		go func() { WriteBackendAddr(h, a); h.Close() }()
		got, err := ReadBackendAddr(p, 10*time.Second)
		if err != nil || got != a {
			t.Errorf("ReadBackendAddr = %v, %v; want %v", got, err, a)
		}
	}
	h, p := net.Pipe()
	go func() { h.Write([]byte("port 4242\n")); h.Close() }()
	if _, err := ReadBackendAddr(p, 10*time.Second); err == nil || !strings.Contains(err.Error(), "want \"backend NETWORK ADDRESS\"") {
		t.Errorf("ReadBackendAddr(port line) = %v, want a refusal", err)
	}
}

// TestSessionEnd: a handed-off proxy learns how its session ended: "bye"
// is a normal end, "end REASON" an error with the reason (flattened to one
// line), a session closed without a word is ErrHostGone, and a signal
// (ctx) ends the wait without error.
func TestSessionEnd(t *testing.T) {
	wait := func(write string) error {
		h, p := net.Pipe()
		go func() { h.Write([]byte(write)); h.Close() }()
		return WaitHandedOff(context.Background(), p)
	}
	if err := wait(EndLine("")); err != nil {
		t.Errorf("bye: %v", err)
	}
	if err := wait(EndLine("the shared backend\nwas stopped")); err == nil || err.Error() != "the shared backend was stopped" {
		t.Errorf("end: %v", err)
	}
	if err := wait(""); !errors.Is(err, ErrHostGone) {
		t.Errorf("closed: %v, want ErrHostGone", err)
	}
	_, p := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitHandedOff(ctx, p); err != nil {
		t.Errorf("canceled: %v", err)
	}
}

// TestAcceptHandoff: the host registers the key the proxy sent before it
// says ok; a session that sends something else is refused.
func TestAcceptHandoff(t *testing.T) {
	h, p := net.Pipe()
	defer h.Close()
	keys := make(chan string, 1)
	res := make(chan error, 1)
	go func() { res <- AcceptHandoff(h, bufio.NewReader(h), func(k string) { keys <- k }) }()
	key, err := requestHandoff(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if got := <-keys; got != key || len(key) != 32 {
		t.Errorf("host expects %q, proxy sent %q", got, key)
	}
	h2, p2 := net.Pipe()
	go func() { p2.Write([]byte("handoff short\n")) }()
	if err := AcceptHandoff(h2, bufio.NewReader(h2), func(string) { t.Error("a bad request registered a key") }); err == nil {
		t.Error("bad request accepted")
	}
}
