package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeFlags returns the flags and variables of the README's Flags table.
func readmeFlags(t *testing.T) (flags, envs []string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Flags\n")
	if !ok {
		t.Fatal("README has no ## Flags section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	row := regexp.MustCompile("(?m)^\\| (?:`(--[a-z-]+)[^`]*`)? *\\| `(PROCREF_[A-Z_]+)`")
	for _, m := range row.FindAllStringSubmatch(sec, -1) {
		if m[1] != "" {
			flags = append(flags, m[1])
		}
		envs = append(envs, m[2])
	}
	if len(envs) < 10 {
		t.Fatalf("found only %d rows in the README's Flags table: %v", len(envs), envs)
	}
	return flags, envs
}

// The help and the README's Flags table list the same flags and
// variables (the table is the reference; help must not drift from it).
func TestHelpMatchesReadmeFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"help"}, strings.NewReader(""), &out, &out); code != exitOK {
		t.Fatalf("procref help exited %d", code)
	}
	help := out.String()
	flags, envs := readmeFlags(t)
	for _, s := range append(flags, envs...) {
		if !strings.Contains(help, s) {
			t.Errorf("README's Flags table has %s; procref help does not", s)
		}
	}
	_, proxySec, _ := strings.Cut(help, "Proxy flags")
	proxySec, _, _ = strings.Cut(proxySec, "\n\n")
	for _, f := range regexp.MustCompile(`(?m)^  (--[a-z-]+)`).FindAllStringSubmatch(proxySec, -1) {
		if !strings.Contains(strings.Join(flags, " ")+" ", f[1]+" ") {
			t.Errorf("procref help has %s; the README's Flags table does not", f[1])
		}
	}
	for _, s := range []string{"demo [--mode mux|tcp|mcp]", "c++-mode", "c-ts-mode"} {
		if !strings.Contains(help, s) {
			t.Errorf("procref help lacks %q", s)
		}
	}
}

func TestDemoHelpExitsZero(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"demo", "--help"}, strings.NewReader(""), &out, &out); code != exitOK {
		t.Fatalf("procref demo --help exited %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "mcp") {
		t.Errorf("demo --help does not mention --mode mcp: %s", out.String())
	}
}

// The eglot one-liner in the README and the help maps every C and C++
// mode, as editors/emacs-eglot.el does: a buffer in a mode not listed
// would silently use a plain, unshared clangd.
func TestEglotOneLinerCoversModes(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	el, err := os.ReadFile("../../editors/emacs-eglot.el")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"(c-mode ", " c-ts-mode ", " c++-mode ", " c++-ts-mode)"} {
		for name, text := range map[string]string{"README.md": string(readme), "procref help": usage, "editors/emacs-eglot.el": string(el)} {
			if !strings.Contains(text, mode) {
				t.Errorf("%s: the eglot clangd line lacks %q", name, strings.TrimSpace(strings.Trim(mode, "()")))
			}
		}
	}
}
