// Package handshake implements procref's connection handshake: the first
// bytes on every TCP connection to a host, which prove that the dialer may use
// the service (it knows the token from the private hint file) and that the
// host is the one the hint describes (it answers with the hint's nonce).
//
// Wire format, one line each way, then the raw protocol bytes:
//
//	client → host: "procref/1 <token> <client-pid>[ <verb>]\n"
//	host → client: "ok <nonce>\n" | "draining\n" | "denied\n" | "busy\n"
//
// "busy" comes from a [Guard] that pushed the connection out to make room
// for newer ones; [Dial] tries again.
//
// A host that receives a wrong token closes the connection without writing
// anything, so no protocol byte reaches a backend from an unauthenticated
// peer. The optional verb asks the host for something other than a session
// (see [VerbCheck]).
package handshake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Version is procref's protocol version: the one number for all that two
// procref processes must agree on. It is in the handshake line
// ([Protocol]), in the hint files (discovery) and in every service key
// (launcher), so incompatible procref versions never share a host or trust
// each other's hints; change any of them and bump it. `procref version`
// prints it.
const Version = 1

// Protocol is the handshake line's first word, "procref/" and [Version].
var Protocol = "procref/" + strconv.Itoa(Version)

// maxLine bounds a handshake line; anything longer is not a handshake.
const maxLine = 256

// Verbs a client may append to its handshake line.
const (
	// VerbSession (the default, no verb on the wire) asks for a protocol
	// session: after "ok" the connection carries the service's bytes.
	VerbSession = ""
	// VerbCheck asks the host to run its health check before answering, and
	// to recover the service if the check fails. The host answers and closes.
	VerbCheck = "check"
	// VerbStop asks the host to shut down now (procref stop).
	VerbStop = "stop"
	// VerbPing only verifies the host: it answers and closes. Library
	// acquirers use it; it does not count as a session.
	VerbPing = "ping"
	// VerbStatus asks for one JSON line of host status after "ok".
	VerbStatus = "status"
)

// Sentinel errors returned by [Dial] and [Client].
var (
	// ErrDraining means the host is shutting down: start a new one.
	ErrDraining = errors.New("host is draining")
	// ErrDenied means the host refused the session.
	ErrDenied = errors.New("host denied the connection")
	// ErrWrongNonce means the listener is not the host the hint describes
	// (another process now owns the port, or the hint is from an older host).
	ErrWrongNonce = errors.New("host answered with another nonce")
	// ErrBadToken is returned by [Server] when the client's token is wrong.
	ErrBadToken = errors.New("wrong or missing token")
	// ErrBusy means a flood of connections pushed this one out before the
	// host read its line; [Dial] retries it until its ctx is done.
	ErrBusy = errors.New("host is busy with other connections")
	// ErrMalformed means the peer did not speak the handshake.
	ErrMalformed = errors.New("malformed handshake")
)

// NewSecret returns 32 random bytes in hex, for tokens and nonces.
func NewSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("handshake: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// Request is what a client said in its handshake line.
type Request struct {
	PID  int    // the client's process id, for logs and status
	Verb string // VerbSession, VerbCheck, VerbStop
}

// Client performs the client side on conn: it sends the line and reads the
// answer. On success conn is ready for protocol bytes; nothing beyond the
// answer line has been read from it. The caller owns conn in every case.
// The deadline of ctx (if any) bounds the exchange.
func Client(ctx context.Context, conn net.Conn, token, nonce string, pid int, verb string) error {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	line := Protocol + " " + token + " " + strconv.Itoa(pid)
	if verb != "" {
		line += " " + verb
	}
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return fmt.Errorf("sending handshake: %w", err)
	}
	answer, err := readLine(conn, len("ok \n")+len(nonce))
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("host closed the connection during the handshake (wrong token?): %w", ErrDenied)
		}
		return fmt.Errorf("reading handshake answer: %w", err)
	}
	switch {
	case answer == "draining":
		return ErrDraining
	case answer == "denied":
		return ErrDenied
	case answer == busyAnswer:
		return ErrBusy
	case strings.HasPrefix(answer, "ok "):
		got := strings.TrimPrefix(answer, "ok ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
			return ErrWrongNonce
		}
		return nil
	}
	return fmt.Errorf("%w: answer %q", ErrMalformed, answer)
}

// Target is where a host listens: Network "unix" with the socket path,
// or "tcp" with 127.0.0.1:PORT (the fallback). Check, if set, runs on the
// connection before any byte is sent, so the token never reaches a peer it
// refuses (procref checks the kernel's peer uid and pid there).
type Target struct {
	Network, Address string
	Check            func(net.Conn) error
	// Dial, if set, connects instead of dialling Network and Address
	// (which then only name the target in messages): procref dials a
	// socket relative to its runtime dir's handle.
	Dial func(context.Context) (net.Conn, error)
}

// TCP is the Target of a host on 127.0.0.1:port.
func TCP(port int) Target {
	return Target{Network: "tcp", Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
}

// DialTarget connects to the host at t, runs t.Check and then [Client]. On
// success the returned connection is ready for protocol bytes and owned by
// the caller. A connection pushed out by the host's [Guard] (ErrBusy) is
// dialled again, with back-off, until ctx is done.
func DialTarget(ctx context.Context, t Target, token, nonce string, pid int, verb string) (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := dialOnce(ctx, t, token, nonce, pid, verb)
		if !errors.Is(err, ErrBusy) {
			return conn, err
		}
		tm := time.NewTimer(backoff)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return nil, fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func dialOnce(ctx context.Context, t Target, token, nonce string, pid int, verb string) (net.Conn, error) {
	dial := t.Dial
	if dial == nil {
		dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, t.Network, t.Address)
		}
	}
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	if t.Check != nil {
		if err := t.Check(conn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if err := Client(ctx, conn, token, nonce, pid, verb); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// ReadRequest reads and checks a client's handshake line on the host side.
// It never reads past the line: no protocol byte after it is consumed.
// On ErrBadToken or ErrMalformed the caller must close conn without writing.
// The caller sets any deadline on conn.
func ReadRequest(conn io.Reader, token string) (Request, error) {
	// The shortest valid line: "procref/1 <token> N\n".
	line, err := readLine(conn, len(Protocol)+len(token)+4)
	if err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	f := strings.Fields(line)
	if len(f) < 3 || len(f) > 4 || f[0] != Protocol {
		return Request{}, ErrMalformed
	}
	if subtle.ConstantTimeCompare([]byte(f[1]), []byte(token)) != 1 {
		return Request{}, ErrBadToken
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil {
		return Request{}, ErrMalformed
	}
	r := Request{PID: pid}
	if len(f) == 4 {
		r.Verb = f[3]
	}
	return r, nil
}

// Accept writes "ok <nonce>".
func Accept(w io.Writer, nonce string) error {
	_, err := io.WriteString(w, "ok "+nonce+"\n")
	return err
}

// busyAnswer is what a Guard writes to a connection it pushes out.
const busyAnswer = "busy"

// Refuse writes "draining" (draining true) or "denied".
func Refuse(w io.Writer, draining bool) error {
	s := "denied\n"
	if draining {
		s = "draining\n"
	}
	_, err := io.WriteString(w, s)
	return err
}

// readLine reads one '\n'-terminated line of at most maxLine bytes. The
// first atLeast bytes are read in as few calls as the peer's writes allow,
// the rest one byte at a time: the caller passes the shortest length the line
// it hopes for can have, so a read never takes bytes beyond that line. (A
// line that ends before atLeast is not the hoped-for line; the caller treats
// it as final, so bytes read past it do not matter.) This keeps a handshake
// to a few system calls instead of one per byte.
func readLine(r io.Reader, atLeast int) (string, error) {
	var buf [maxLine]byte
	atLeast = min(atLeast, maxLine)
	n := 0
	for {
		if n == len(buf) {
			return "", errors.New("line too long")
		}
		want := 1
		if n < atLeast {
			want = atLeast - n
		}
		m, err := r.Read(buf[n : n+want])
		if i := bytes.IndexByte(buf[n:n+m], '\n'); i >= 0 {
			return string(buf[:n+i]), nil
		}
		n += m
		if m > 0 {
			continue
		}
		if err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}
