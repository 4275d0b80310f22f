package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveName(t *testing.T) {
	known := []string{"clangd-0123456789ab", "gopls-aaaaaaaaaaaa", "gopls-bbbbbbbbbbbb", "clangd-tools"}
	for in, want := range map[string]string{"clangd": "clangd-0123456789ab", "gopls-aaaaaaaaaaaa": "gopls-aaaaaaaaaaaa", "clangd-tools": "clangd-tools"} {
		if got, err := resolveName(in, known); err != nil || got != want {
			t.Errorf("resolveName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := resolveName("gopls", known); err == nil || !strings.Contains(err.Error(), "gopls-aaaaaaaaaaaa, gopls-bbbbbbbbbbbb") {
		t.Errorf("ambiguous gopls: %v", err)
	}
	if _, err := resolveName("pylsp", known); err == nil || !strings.Contains(err.Error(), "there are: clangd-0123456789ab") {
		t.Errorf("unknown pylsp: %v", err)
	}
}

// `procref logs clangd` shows the log of the one clangd-<hex> backend, and
// an unknown name lists the names there are.
func TestLogsByServerName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PROCREF_STATE_DIR", dir)
	if err := os.WriteFile(filepath.Join(dir, "clangd-0123456789ab.log"), []byte("clangd log line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"logs", "clangd"}, strings.NewReader(""), &out, &errb); code != exitOK || out.String() != "clangd log line\n" {
		t.Fatalf("logs clangd: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"logs", "gopls"}, strings.NewReader(""), &out, &errb); code != exitFailure || !strings.Contains(errb.String(), "there are: clangd-0123456789ab") {
		t.Fatalf("logs gopls: exit %d, err %q", code, errb.String())
	}
}
