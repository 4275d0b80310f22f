package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/platform"
	"go.uber.org/goleak"
)

// helpers are the helper modes a re-executed test binary runs instead of
// the tests (DISCOVERY_TEST_HELPER=mode), registered by per-OS test files.
var helpers = map[string]func(){}

func TestMain(m *testing.M) {
	if os.Getenv("DISCOVERY_TEST_EXIT") == "1" {
		os.Exit(0) // a short-lived process whose pid the tests use as "dead"
	}
	if h := helpers[os.Getenv("DISCOVERY_TEST_HELPER")]; h != nil {
		h()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// privateDir returns a fresh 0700 directory.
func privateDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "run")
	if err := platform.EnsurePrivateDir(d); err != nil {
		t.Fatal(err)
	}
	return d
}

// openDir opens the checked handle on dir for the test's life.
func openDir(t testing.TB, dir string) *platform.PrivateDir {
	t.Helper()
	d, err := platform.OpenPrivateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// fakeHost is an in-process listener speaking the host side of the
// handshake. It counts connections so tests can show a hint was never
// dialled.
type fakeHost struct {
	port  int
	token string
	nonce string
	dials atomic.Int32
	verbs chan string
}

// newFakeHost starts a host that answers a correct token with "ok <answerNonce>"
// (or the line answer, if set).
func newFakeHost(t *testing.T, answerNonce, answer string) *fakeHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{port: ln.Addr().(*net.TCPAddr).Port, token: handshake.NewSecret(),
		nonce: answerNonce, verbs: make(chan string, 16)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.dials.Add(1)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			req, err := handshake.ReadRequest(c, h.token)
			if err == nil {
				select {
				case h.verbs <- req.Verb:
				default:
				}
				if answer != "" {
					io.WriteString(c, answer+"\n")
				} else {
					handshake.Accept(c, answerNonce)
				}
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return h
}

// hint returns a hint that describes h exactly, with the test process as
// its host, so that it verifies unless the test changes one field.
func (h *fakeHost) hint(name, nonce string) *Hint {
	return &Hint{Name: name, Key: "k", Host: platform.Self(), Port: h.port,
		Token: h.token, Nonce: nonce, StartedAt: time.Now().UTC()}
}

func TestPath(t *testing.T) {
	if got := Path("/r", "gopls-0123"); got != filepath.Join("/r", "gopls-0123.json") {
		t.Errorf("Path = %q", got)
	}
}

func TestWriteRead(t *testing.T) {
	dir := privateDir(t)
	in := &Hint{
		Name: "svc", Key: "key", Host: platform.Self(), Port: 4321,
		Token: "tok", Nonce: "non", Mode: "tcp", Command: []string{"gopls", "serve"},
		Root: "/src", Log: "/log/svc.log", StartedAt: time.Unix(1700000000, 0).UTC(),
		Backend: platform.Identity{PID: 9, StartTime: 99},
		Info:    json.RawMessage(`{"port":5}`),
	}
	if err := Write(openDir(t, dir), in); err != nil {
		t.Fatal(err)
	}
	if in.Version != handshake.Version {
		t.Errorf("Write did not set Version: %d", in.Version)
	}
	out, err := Read(openDir(t, dir), "svc")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(out)
	if !bytes.Equal(a, b) {
		t.Errorf("round trip:\n in %s\nout %s", a, b)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(Path(dir, "svc"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("hint mode = %v, %v; want 0600", fi.Mode().Perm(), err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries after Write, want only the hint (no temp files)", len(ents))
	}
}

func TestReadMissing(t *testing.T) {
	if _, err := Read(openDir(t, privateDir(t)), "none"); !errors.Is(err, ErrNoHint) {
		t.Errorf("Read of a missing hint: %v, want ErrNoHint", err)
	}
}

// Every malformed hint is reported stale, never trusted, and left as it was
// (Read does not change anything).
func TestReadStale(t *testing.T) {
	good := func() []byte {
		b, _ := json.Marshal(&Hint{Version: handshake.Version, Name: "svc", Host: platform.Self(), Port: 1, Token: "t", Nonce: "n"})
		return b
	}
	edit := func(f func(h map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good(), &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	huge := bytes.Repeat([]byte(" "), 10<<20)
	copy(huge, good())
	cases := []struct {
		name    string
		content []byte
		want    string
	}{
		{"empty", []byte{}, "empty"},
		{"corrupt", []byte(`{"version":1,"name":"svc",`), "corrupt"},
		{"not json", []byte("\x00\x01garbage"), "corrupt"},
		{"10 MiB", huge, "larger"},
		{"just over the bound", append(good(), bytes.Repeat([]byte(" "), MaxHintSize)...), "larger"},
		{"other version", edit(func(m map[string]any) { m["version"] = 2 }), "version"},
		{"no version", edit(func(m map[string]any) { delete(m, "version") }), "version"},
		{"other name", edit(func(m map[string]any) { m["name"] = "other" }), "names service"},
		{"no port", edit(func(m map[string]any) { m["port"] = 0 }), "lacks"},
		{"port out of range", edit(func(m map[string]any) { m["port"] = 70000 }), "lacks"},
		{"no token", edit(func(m map[string]any) { m["token"] = "" }), "lacks"},
		{"no nonce", edit(func(m map[string]any) { delete(m, "nonce") }), "lacks"},
		{"no pid", edit(func(m map[string]any) { m["host"] = map[string]any{"pid": 0} }), "lacks"},
		{"wrong types", edit(func(m map[string]any) { m["port"] = "80" }), "corrupt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := privateDir(t)
			p := Path(dir, "svc")
			if err := os.WriteFile(p, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := Read(openDir(t, dir), "svc")
			if h != nil || !errors.Is(err, ErrStale) {
				t.Fatalf("Read = %v, %v; want ErrStale", h, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if b, _ := os.ReadFile(p); !bytes.Equal(b, tc.content) {
				t.Error("Read changed the file")
			}
		})
	}
	t.Run("valid control", func(t *testing.T) {
		dir := privateDir(t)
		os.WriteFile(Path(dir, "svc"), good(), 0o600)
		if _, err := Read(openDir(t, dir), "svc"); err != nil {
			t.Fatalf("the unedited hint does not read: %v", err)
		}
	})
}

// A symlink is stale even when it points at a perfectly good hint, and
// neither it nor its target is touched.
func TestReadSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir := privateDir(t)
	elsewhere := filepath.Join(privateDir(t), "target.json")
	if err := Write(openDir(t, filepath.Dir(elsewhere)), &Hint{Name: "target", Host: platform.Self(), Port: 1, Token: "t", Nonce: "n"}); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(elsewhere)
	good = bytes.Replace(good, []byte(`"target"`), []byte(`"svc"`), 1)
	os.WriteFile(elsewhere, good, 0o600)
	if err := os.Symlink(elsewhere, Path(dir, "svc")); err != nil {
		t.Fatal(err)
	}
	if h, err := Read(openDir(t, dir), "svc"); h != nil || !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "is a symbolic link, not a hint file: remove it") {
		t.Fatalf("Read of a symlink = %v, %v", h, err)
	}
	// Removing a stale symlink removes the link, not its target.
	if err := Remove(openDir(t, dir), "svc", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(Path(dir, "svc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("symlink still there: %v", err)
	}
	if b, err := os.ReadFile(elsewhere); err != nil || !bytes.Equal(b, good) {
		t.Errorf("symlink target changed: %v", err)
	}
}

func TestReadDirectory(t *testing.T) {
	dir := privateDir(t)
	os.Mkdir(Path(dir, "svc"), 0o700)
	if _, err := Read(openDir(t, dir), "svc"); !errors.Is(err, ErrStale) {
		t.Errorf("Read of a directory: %v, want ErrStale", err)
	}
}

// Readers racing with writers always see a whole hint, old or new.
func TestWriteAtomic(t *testing.T) {
	dir := privateDir(t)
	mk := func(i int) *Hint {
		return &Hint{Name: "svc", Host: platform.Self(), Port: 1000 + i, Token: strings.Repeat("t", 100*i+1), Nonce: "n"}
	}
	if err := Write(openDir(t, dir), mk(0)); err != nil {
		t.Fatal(err)
	}
	var writers, reader sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 3)
	for w := 1; w <= 2; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for range 200 {
				if err := Write(openDir(t, dir), mk(w)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	reads := 0
	reader.Add(1)
	go func() {
		defer reader.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			h, err := Read(openDir(t, dir), "svc")
			if err != nil {
				errc <- err
				return
			}
			reads++
			if n := h.Port - 1000; len(h.Token) != 100*n+1 {
				errc <- errors.New("torn hint")
				return
			}
		}
	}()
	writers.Wait()
	close(stop)
	reader.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if reads == 0 {
		t.Error("the reader never read")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries left, want 1 (temp files leaked?)", len(ents))
	}
}

func TestVerifyLive(t *testing.T) {
	nonce := handshake.NewSecret()
	fh := newFakeHost(t, nonce, "")
	conn, err := Verify(testCtx(t), fh.hint("svc", nonce), handshake.VerbPing, time.Second)
	if err != nil {
		t.Fatalf("Verify of a live hint: %v", err)
	}
	conn.Close()
	if v := <-fh.verbs; v != handshake.VerbPing {
		t.Errorf("host saw verb %q", v)
	}
}

// deadIdentity returns the identity of a process that has exited.
func deadIdentity(t *testing.T) platform.Identity {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DISCOVERY_TEST_EXIT=1")
	if p, err := exec.LookPath("true"); err == nil {
		cmd = exec.Command(p) // much faster than a -race test binary
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := platform.Lookup(cmd.Process.Pid)
	if err != nil {
		id = platform.Identity{PID: cmd.Process.Pid, StartTime: 1}
	}
	cmd.Wait()
	return id
}

// Each check rejects a hint that is otherwise perfect, and the pid checks
// reject it without dialling anything.
func TestVerifyStale(t *testing.T) {
	nonce := handshake.NewSecret()
	for _, tc := range []struct {
		name    string
		edit    func(t *testing.T, h *Hint, fh *fakeHost)
		hostNon string // the nonce the listener answers with
		want    string
		noDial  bool
	}{
		{name: "dead pid", edit: func(t *testing.T, h *Hint, _ *fakeHost) { h.Host = deadIdentity(t) }, want: "pid", noDial: true},
		{name: "pid reused", edit: func(t *testing.T, h *Hint, _ *fakeHost) { h.Host.StartTime++ }, want: "reused", noDial: true},
		{name: "wrong nonce", hostNon: handshake.NewSecret(), want: "another listener"},
		{name: "wrong token", edit: func(t *testing.T, h *Hint, _ *fakeHost) { h.Token = handshake.NewSecret() }, want: "denied"},
		{name: "nothing listening", edit: func(t *testing.T, h *Hint, _ *fakeHost) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			h.Port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}, want: "port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hn := nonce
			if tc.hostNon != "" {
				hn = tc.hostNon
			}
			fh := newFakeHost(t, hn, "")
			h := fh.hint("svc", nonce)
			if tc.edit != nil {
				tc.edit(t, h, fh)
			}
			conn, err := Verify(testCtx(t), h, handshake.VerbPing, time.Second)
			if conn != nil {
				conn.Close()
				t.Fatal("Verify trusted a stale hint")
			}
			if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v; want ErrStale saying %q", err, tc.want)
			}
			if tc.noDial && fh.dials.Load() != 0 {
				t.Errorf("Verify dialled the port of a hint whose pid check failed")
			}
		})
	}
}

// A listener that accepts and never answers is stale after the timeout.
func TestVerifySilentListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 1)
	go func() {
		defer close(conns)
		if c, err := ln.Accept(); err == nil {
			conns <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range conns {
			c.Close()
		}
	}()
	h := &Hint{Name: "svc", Host: platform.Self(), Port: ln.Addr().(*net.TCPAddr).Port, Token: "t", Nonce: "n"}
	start := time.Now()
	_, err = Verify(testCtx(t), h, "", 200*time.Millisecond)
	if !errors.Is(err, ErrStale) {
		t.Errorf("Verify of a silent listener: %v, want ErrStale", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Verify took %v with a 200ms timeout", el)
	}
}

func TestVerifyDraining(t *testing.T) {
	nonce := handshake.NewSecret()
	fh := newFakeHost(t, nonce, "draining")
	_, err := Verify(testCtx(t), fh.hint("svc", nonce), "", time.Second)
	if !errors.Is(err, handshake.ErrDraining) || errors.Is(err, ErrStale) {
		t.Errorf("Verify of a draining host: %v, want ErrDraining (not stale)", err)
	}
}

// A cancelled caller gets its own cancellation, not a verdict on the hint.
func TestVerifyCancelled(t *testing.T) {
	nonce := handshake.NewSecret()
	fh := newFakeHost(t, nonce, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Verify(ctx, fh.hint("svc", nonce), "", time.Second)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrStale) {
		t.Errorf("Verify with a cancelled ctx: %v, want context.Canceled", err)
	}
}

func TestRemove(t *testing.T) {
	dir := privateDir(t)
	write := func(nonce string) {
		t.Helper()
		if err := Write(openDir(t, dir), &Hint{Name: "svc", Host: platform.Self(), Port: 1, Token: "t", Nonce: nonce}); err != nil {
			t.Fatal(err)
		}
	}
	exists := func() bool {
		_, err := os.Lstat(Path(dir, "svc"))
		return err == nil
	}
	write("ours")
	if err := Remove(openDir(t, dir), "svc", "theirs"); err != nil || !exists() {
		t.Errorf("Remove with another nonce: %v, exists %v; want kept", err, exists())
	}
	if err := Remove(openDir(t, dir), "svc", "ours"); err != nil || exists() {
		t.Errorf("Remove with our nonce: %v, exists %v; want removed", err, exists())
	}
	if err := Remove(openDir(t, dir), "svc", "ours"); err != nil {
		t.Errorf("Remove of a missing hint: %v", err)
	}
	if err := Remove(openDir(t, dir), "svc", ""); err != nil {
		t.Errorf("unconditional Remove of a missing hint: %v", err)
	}
	// A broken file is not ours to remove by nonce...
	os.WriteFile(Path(dir, "svc"), []byte("{"), 0o600)
	if err := Remove(openDir(t, dir), "svc", "ours"); err != nil || !exists() {
		t.Errorf("Remove(nonce) of a corrupt hint: %v, exists %v; want kept", err, exists())
	}
	// ...but the startup path removes it unconditionally.
	if err := Remove(openDir(t, dir), "svc", ""); err != nil || exists() {
		t.Errorf("Remove(\"\") of a corrupt hint: %v, exists %v; want removed", err, exists())
	}
}

func TestList(t *testing.T) {
	dir := privateDir(t)
	for _, n := range []string{"b-1", "a-2"} {
		if err := Write(openDir(t, dir), &Hint{Name: n, Host: platform.Self(), Port: 1, Token: "t", Nonce: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "a-2.lock"), nil, 0o600)
	got, err := List(openDir(t, dir))
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"a-2", "b-1"}) {
		t.Errorf("List = %v, %v", got, err)
	}
}

func BenchmarkReadVerify(b *testing.B) {
	dir := b.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil { // Read checks the dir is private
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	token, nonce := handshake.NewSecret(), handshake.NewSecret()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := handshake.ReadRequest(c, token); err == nil {
				handshake.Accept(c, nonce)
			}
			c.Close()
		}
	}()
	d := openDir(b, dir) // once per process, as procref does
	if err := Write(d, &Hint{Name: "svc", Host: platform.Self(), Port: ln.Addr().(*net.TCPAddr).Port, Token: token, Nonce: nonce}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		h, err := Read(d, "svc")
		if err != nil {
			b.Fatal(err)
		}
		c, err := Verify(ctx, h, handshake.VerbPing, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// TestWriteOverDirectory: a directory where the hint belongs is not
// removed (it may hold someone's files) and the error names what to remove.
func TestWriteOverDirectory(t *testing.T) {
	dir := privateDir(t)
	p := Path(dir, "svc")
	if err := os.MkdirAll(filepath.Join(p, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := Write(openDir(t, dir), &Hint{Name: "svc", Host: platform.Self(), Port: 1, Token: "t", Nonce: "n"})
	if err == nil || !strings.Contains(err.Error(), p+" is a directory, not a hint file: remove it (rm -r "+p+")") {
		t.Fatalf("Write over a directory: %v", err)
	}
	if _, err := Read(openDir(t, dir), "svc"); !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("Read of a directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p, "sub")); err != nil {
		t.Fatalf("the directory's content is gone: %v", err)
	}
}
