package handshake

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx is bounded by the test's deadline (or 10 s).
func testCtx(t *testing.T) context.Context {
	t.Helper()
	d := 10 * time.Second
	if dl, ok := t.Deadline(); ok && time.Until(dl) < d {
		d = time.Until(dl) - 100*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fakeHost is a real loopback listener that speaks the host side of the
// handshake with a fixed answer policy. Every accepted connection's result
// is sent on results.
type fakeHost struct {
	ln      net.Listener
	port    int
	token   string
	results chan hostResult
	done    chan struct{}
}

type hostResult struct {
	req  Request
	err  error
	rest string // bytes that followed the handshake line, up to EOF
}

// newFakeHost answers every valid handshake with answer(req) (a full line
// without "\n", or "" to accept with nonce) and, for accepted sessions,
// records what follows. Wrong tokens are closed without a byte.
func newFakeHost(t *testing.T, token, nonce string, answer func(Request) string) *fakeHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, token: token,
		results: make(chan hostResult, 16), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			req, err := ReadRequest(conn, token)
			if err != nil {
				conn.Close()
				h.results <- hostResult{err: err}
				continue
			}
			a := ""
			if answer != nil {
				a = answer(req)
			}
			if a == "" {
				Accept(conn, nonce)
			} else {
				io.WriteString(conn, a+"\n")
			}
			rest, _ := io.ReadAll(conn)
			conn.Close()
			h.results <- hostResult{req: req, rest: string(rest)}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-h.done
	})
	return h
}

func (h *fakeHost) result(t *testing.T) hostResult {
	t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("fake host saw no connection within 5s")
		return hostResult{}
	}
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := NewSecret()
		if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
			t.Fatalf("NewSecret() = %q, want 64 lower-case hex digits", s)
		}
		if seen[s] {
			t.Fatalf("NewSecret repeated %q", s)
		}
		seen[s] = true
	}
}

func TestDialSessionRoundTrip(t *testing.T) {
	token, nonce := NewSecret(), NewSecret()
	h := newFakeHost(t, token, nonce, nil)
	conn, err := Dial(testCtx(t), h.port, token, nonce, 4242, VerbSession)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if _, err := io.WriteString(conn, "Content-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	r := h.result(t)
	if r.err != nil {
		t.Fatalf("host: %v", r.err)
	}
	if r.req.PID != 4242 || r.req.Verb != VerbSession {
		t.Errorf("host saw %+v, want pid 4242 and no verb", r.req)
	}
	// ReadRequest reads byte by byte: no protocol byte is lost to buffering.
	if r.rest != "Content-Length: 2\r\n\r\n{}" {
		t.Errorf("bytes after the handshake = %q", r.rest)
	}
}

func TestDialVerbs(t *testing.T) {
	token, nonce := NewSecret(), NewSecret()
	h := newFakeHost(t, token, nonce, nil)
	for _, verb := range []string{VerbPing, VerbCheck, VerbStatus, VerbStop} {
		conn, err := Dial(testCtx(t), h.port, token, nonce, 7, verb)
		if err != nil {
			t.Fatalf("Dial %q: %v", verb, err)
		}
		conn.Close()
		if r := h.result(t); r.err != nil || r.req.Verb != verb || r.req.PID != 7 {
			t.Errorf("verb %q: host saw %+v, %v", verb, r.req, r.err)
		}
	}
}

func TestDialAnswers(t *testing.T) {
	token, nonce := NewSecret(), NewSecret()
	for _, tc := range []struct {
		answer string
		want   error
	}{
		{"draining", ErrDraining},
		{"denied", ErrDenied},
		{"ok " + NewSecret(), ErrWrongNonce},
		{"ok", ErrMalformed},
		{"HTTP/1.1 400 Bad Request", ErrMalformed},
	} {
		t.Run(tc.answer, func(t *testing.T) {
			h := newFakeHost(t, token, nonce, func(Request) string { return tc.answer })
			conn, err := Dial(testCtx(t), h.port, token, nonce, 1, VerbSession)
			if conn != nil {
				conn.Close()
				t.Fatal("Dial returned a connection")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Dial error = %v, want %v", err, tc.want)
			}
			h.result(t)
		})
	}
}

// A host closes a connection with a wrong token without writing a byte, and
// the client reports that as ErrDenied.
func TestWrongTokenClosedWithoutAByte(t *testing.T) {
	token, nonce := NewSecret(), NewSecret()
	h := newFakeHost(t, token, nonce, nil)
	_, err := Dial(testCtx(t), h.port, NewSecret(), nonce, 1, VerbSession)
	if !errors.Is(err, ErrDenied) {
		t.Errorf("Dial with a wrong token: %v, want ErrDenied", err)
	}
	if r := h.result(t); !errors.Is(r.err, ErrBadToken) {
		t.Errorf("host: %v, want ErrBadToken", r.err)
	}
}

func TestReadRequest(t *testing.T) {
	const token = "tok"
	long := strings.Repeat("x", maxLine+10)
	for _, tc := range []struct {
		in   string
		want Request
		err  error
	}{
		{"procref/1 tok 12\n", Request{PID: 12}, nil},
		{"procref/1 tok 12 ping\nrest", Request{PID: 12, Verb: VerbPing}, nil},
		{"procref/1 tok 1\nrest", Request{PID: 1}, nil}, // the shortest line
		{"procref/1 tok 123456 status\nrest\n", Request{PID: 123456, Verb: VerbStatus}, nil},
		{"procref/1 bad 12\n", Request{}, ErrBadToken},
		{"procref/1 tokx 12\n", Request{}, ErrBadToken},
		{"procref/1 to 12\n", Request{}, ErrBadToken},
		{"procref/1 12\n", Request{}, ErrMalformed},        // missing token
		{"procref/1  12\n", Request{}, ErrMalformed},       // empty token
		{"procref/1 tok\n", Request{}, ErrMalformed},       // missing pid
		{"procref/1 tok x\n", Request{}, ErrMalformed},     // bad pid
		{"procref/2 tok 12\n", Request{}, ErrMalformed},    // other version
		{"procref/1 tok 1 a b\n", Request{}, ErrMalformed}, // too many fields
		{"GET / HTTP/1.1\r\n", Request{}, ErrMalformed},
		{"", Request{}, ErrMalformed},                 // EOF
		{"procref/1 tok 12", Request{}, ErrMalformed}, // EOF before newline
		{"procref/1 " + long + " 1\n", Request{}, ErrMalformed},
		{"\n", Request{}, ErrMalformed},
	} {
		r := strings.NewReader(tc.in)
		got, err := ReadRequest(r, token)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ReadRequest(%.40q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil {
			_, want, _ := strings.Cut(tc.in, "\n")
			if rest, _ := io.ReadAll(r); string(rest) != want {
				t.Errorf("ReadRequest(%q) consumed past the line: rest %q", tc.in, rest)
			}
		}
	}
}

// A peer that never finishes its line cannot hold the client past ctx.
func TestClientHonoursDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, ln.Addr().(*net.TCPAddr).Port, "t", "n", 1, "")
	if err == nil {
		t.Fatal("Dial to a silent peer succeeded")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Dial error = %v, want a timeout", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Dial took %v with a 200ms deadline", el)
	}
}

// Client clears the deadline it set, so a session is not cut off later.
func TestClientClearsDeadline(t *testing.T) {
	token, nonce := NewSecret(), NewSecret()
	h := newFakeHost(t, token, nonce, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	conn, err := Dial(ctx, h.port, token, nonce, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond) // past the old deadline
	if _, err := io.WriteString(conn, "still open\n"); err != nil {
		t.Errorf("write after the handshake deadline: %v", err)
	}
}

// Bytes the host sends right after "ok" (in the same segment) stay in the
// connection for the caller.
func TestClientDoesNotReadPastAnswer(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go func() {
		if _, err := ReadRequest(c2, "tk"); err == nil {
			io.WriteString(c2, "ok nn\nContent-Length: 2\r\n\r\n{}")
		}
	}()
	if err := Client(context.Background(), c1, "tk", "nn", 1, ""); err != nil {
		t.Fatalf("Client: %v", err)
	}
	buf := make([]byte, 64)
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.ReadAtLeast(c1, buf, len("Content-Length: 2\r\n\r\n{}"))
	if err != nil || string(buf[:n]) != "Content-Length: 2\r\n\r\n{}" {
		t.Errorf("after the answer: %q, %v", buf[:n], err)
	}
}

func TestAcceptRefuse(t *testing.T) {
	var b strings.Builder
	Accept(&b, "n1")
	Refuse(&b, true)
	Refuse(&b, false)
	if got := b.String(); got != "ok n1\ndraining\ndenied\n" {
		t.Errorf("wire = %q", got)
	}
}

// The lines a client sends parse back on the host side.
func TestClientLineParses(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	errc := make(chan error, 1)
	go func() { errc <- Client(context.Background(), c1, "tk", "nn", 99, VerbStatus) }()
	req, err := ReadRequest(c2, "tk")
	if err != nil || req != (Request{PID: 99, Verb: VerbStatus}) {
		t.Fatalf("ReadRequest = %+v, %v", req, err)
	}
	Accept(c2, "nn")
	if err := <-errc; err != nil {
		t.Fatalf("Client: %v", err)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add("procref/1 tok 12 ping\n")
	f.Add("procref/1 tok 1\n")
	f.Add("\x00\n")
	f.Fuzz(func(t *testing.T, in string) {
		req, err := ReadRequest(strings.NewReader(in), "tok")
		if err != nil {
			return
		}
		// Only a line carrying the exact token is accepted.
		line, _, _ := strings.Cut(in, "\n")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != Protocol || f[1] != "tok" || strconv.Itoa(req.PID) == "" {
			t.Fatalf("accepted %q as %+v", in, req)
		}
	})
}

func BenchmarkHandshake(b *testing.B) {
	token, nonce := NewSecret(), NewSecret()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := ReadRequest(c, token); err == nil {
				Accept(c, nonce)
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		c, err := Dial(ctx, port, token, nonce, 1, VerbPing)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
