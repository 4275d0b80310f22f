package hostproto

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStampIdentity: the key changes when the backend executable, a file
// argument or the procref executable is replaced (renamed over, as
// installers do), not when nothing changed; flags and words that name no
// file are not stat'ed; the host, given the spec as JSON after the files
// changed, computes the proxy's key, not a new one; Superseded notices.
func TestStampIdentity(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p+".tmp", []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	node, exe := write("node", "v1"), write("procref", "p1")
	write("index.js", "s1")
	spec := func() *Spec {
		s := &Spec{Mode: ModeMux, Command: []string{node, "index.js", "--stdio", "serve"}, Dir: dir, Share: ShareGlobal}
		s.Stamp(exe)
		return s
	}
	base := spec()
	if n := strings.Count(base.Identity, "\x00") + 1; n != 3 {
		t.Fatalf("identity has %d entries, want 3 (procref, node, index.js): %q", n, base.Identity)
	}
	if spec().Key() != base.Key() {
		t.Fatal("same files, different key")
	}
	b, _ := json.Marshal(base)
	for _, file := range []string{"node", "index.js", "procref"} {
		write(file, "v2-"+file)
		now := spec()
		if now.Key() == base.Key() {
			t.Errorf("%s replaced: key unchanged", file)
		}
		if !Superseded(base.Identity, base.Dir, base.Command) {
			t.Errorf("%s replaced: old host not superseded", file)
		}
		if Superseded(now.Identity, now.Dir, now.Command) {
			t.Errorf("%s replaced: the new host is superseded", file)
		}
		var host Spec
		if err := json.Unmarshal(b, &host); err != nil {
			t.Fatal(err)
		}
		if svc, err := host.Service(""); err != nil || svc.Key != base.Key() || svc.Name != base.ServiceName() {
			t.Errorf("host's service after %s changed = %v, %v; want the proxy's key", file, svc, err)
		}
	}
	if Superseded("", dir, base.Command) {
		t.Error("a host with no recorded identity is superseded")
	}
}
