package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLaterLingerLogged: the window that starts the backend decides its
// --linger; a later window whose --linger differs is attached to the
// running backend all the same and told on stderr that its value does
// not apply, with the command to restart the backend with it.
func TestLaterLingerLogged(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := e.start(ws, nil, sampleServer("mux")...)
	if _, err := a.client(ctx).Initialize(ctx, ws); err != nil {
		t.Fatal(err)
	}
	b := e.start(ws, nil, sampleServer("mux", "--linger", "1h")...)
	if _, err := b.client(ctx).Initialize(ctx, ws); err != nil {
		t.Fatal(err)
	}
	// b is attached (its initialize was answered): the warning came before
	if s := b.stderr.String(); !strings.Contains(s, "--linger applies only to the window that starts the backend") ||
		!strings.Contains(s, "procref stop ") {
		t.Fatalf("window b (--linger 1h) stderr %q: want the warning that its linger does not apply", s)
	}
	if s := a.stderr.String(); strings.Contains(s, "linger") {
		t.Errorf("window a (it started the backend) stderr %q mentions linger", s)
	}
}
