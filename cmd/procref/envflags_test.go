package main

import (
	"bytes"
	"strings"
	"testing"
)

// A bad value from the environment is refused before anything starts,
// with an error naming the variable (not the flag) and saying what fits.
func TestEnvErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct{ env, val, want string }{
		{"PROCREF_MAX_MESSAGE", "lots", "PROCREF_MAX_MESSAGE: \"lots\" is not a size"},
		{"PROCREF_NAME", "my/slash", "PROCREF_NAME: \"my/slash\" is not a backend name"},
		{"PROCREF_HANDOFF", "maybe", "PROCREF_HANDOFF=\"maybe\": use 0"},
		{"PROCREF_SHARE", "planet", "PROCREF_SHARE must be root or global"},
		{"PROCREF_PROTOCOL", "smtp", "PROCREF_PROTOCOL must be lsp, mcp or jsonrpc"},
		{"PROCREF_REFCOUNT", "abacus", "PROCREF_REFCOUNT must be auto, sysv or filelock"},
		{"PROCREF_LINGER", "forever", "PROCREF_LINGER: \"forever\" is not a duration"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.val)
			var stderr bytes.Buffer
			code := run([]string{"--", "true"}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), exitUsage, tc.want)
			}
		})
	}
	// the flag's own name when the bad value came from the command line
	var stderr bytes.Buffer
	if code := run([]string{"--name", "a/b", "--", "true"}, strings.NewReader(""), &bytes.Buffer{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--name: ") {
		t.Fatalf("--name a/b: exit %d, stderr %q", code, stderr.String())
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1M": 1 << 20, "1MiB": 1 << 20, "512k": 512 << 10, "2G": 2 << 30, "100": 100, "64MB": 64 << 20} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1.5M", "1T", "0"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}
