package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// The default status table fits 120 columns even with long names, roots
// and commands; --wide shows them whole.
func TestStatusFits120Columns(t *testing.T) {
	long := "/home/someone/src/a/very/long/path/to/some/workspace/root/that/goes/on"
	rows := []backendRow{
		{Name: "rust-analyzer-0123456789ab", State: "superseded", Mode: "mux", HostPID: 4194304, References: 123, Clients: 456,
			Uptime: 999999, BackendRSS: 12345 << 20, Root: long, Command: []string{"/usr/bin/rust-analyzer", "--very-long-flag=" + long}, Log: "/root/.local/state/procref/rust-analyzer-0123456789ab.log"},
		{Name: "clangd-0123456789ab", State: "running", Mode: "tcp", BackendPID: 1234567, Port: 45678, Transport: "tcp 127.0.0.1:45678 (loopback port, fallback)", References: 1, Clients: 1, Uptime: 5},
	}
	var out bytes.Buffer
	printStatus(&out, rows, "/run/user/0/procref", false)
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if n := utf8.RuneCountInString(line); n > 120 {
			t.Errorf("status line is %d columns wide (> 120): %q", n, line)
		}
	}
	if !strings.Contains(out.String(), "clangd-0123456789ab") {
		t.Errorf("short name clipped: %s", out.String())
	}
	out.Reset()
	printStatus(&out, rows, "/run/user/0/procref", true)
	for _, s := range []string{long, rows[0].Log, "tcp:45678", "--very-long-flag=", "clangd-0123456789ab: the host is on loopback port 45678 (fallback)"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--wide lacks %q:\n%s", s, out.String())
		}
	}
}
