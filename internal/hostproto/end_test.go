package hostproto

import (
	"fmt"
	"strings"
	"testing"
)

func TestTailEndReason(t *testing.T) {
	frame := func(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }
	note := `{"jsonrpc":"2.0","method":"$/procref/sessionEnded","params":{"reason":"the shared backend was stopped"}}`
	tl := NewTail()
	tl.Write([]byte(frame(`{"jsonrpc":"2.0","id":1,"result":{}}`)))
	if r := tl.EndReason(); r != "" {
		t.Fatalf("EndReason without the notification = %q", r)
	}
	tl.Write([]byte(strings.Repeat("x", 3*tailKeep))) // older bytes drop out
	tl.Write([]byte(frame(note)[:20]))
	tl.Write([]byte(frame(note)[20:]))
	if r := tl.EndReason(); r != "the shared backend was stopped" {
		t.Fatalf("EndReason = %q", r)
	}
	tl.Write([]byte(frame(`{"jsonrpc":"2.0","method":"x"}`))) // not the last message: no reason
	if r := tl.EndReason(); r != "" {
		t.Fatalf("EndReason after a later message = %q", r)
	}
	if r := (*Tail)(nil).EndReason(); r != "" {
		t.Fatal("nil Tail has a reason")
	}
}
