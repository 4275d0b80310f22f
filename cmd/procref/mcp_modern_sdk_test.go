//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// sdkListener is a Go SDK session (its defaults: 2026-07-28) through
// procref that records the resource updates it is sent and each
// notifications/subscriptions/acknowledged.
type sdkListener struct {
	name  string
	s     *mcpsdk.ClientSession
	acks  chan struct{}
	upd   chan string
	tools chan struct{}
	mu    sync.Mutex
	uris  []string
	subID []any
}

func connectListener(t *testing.T, ctx context.Context, e *env, ws, name string, mrtr *mcpsdk.MultiRoundTripOptions) *sdkListener {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l := &sdkListener{name: name, acks: make(chan struct{}, 8), upd: make(chan string, 64), tools: make(chan struct{}, 8)}
	cmd := exec.Command(procrefBin, "--", self)
	cmd.Env = append(append([]string{}, e.vars...), "GO_WANT_HELPER_PROCESS=gosdk")
	cmd.Dir, cmd.Stderr = ws, os.Stderr
	c := mcpsdk.NewClient(&mcpsdk.Implementation{Name: name, Version: "1"}, &mcpsdk.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcpsdk.ResourceUpdatedNotificationRequest) {
			l.mu.Lock()
			l.uris = append(l.uris, req.Params.URI)
			l.subID = append(l.subID, req.Params.Meta[mcpsdk.MetaKeySubscriptionID])
			l.mu.Unlock()
			l.upd <- req.Params.URI
		},
		ToolListChangedHandler: func(context.Context, *mcpsdk.ToolListChangedRequest) {
			l.tools <- struct{}{}
		},
		ElicitationHandler: func(context.Context, *mcpsdk.ElicitRequest) (*mcpsdk.ElicitResult, error) {
			return &mcpsdk.ElicitResult{Action: "accept"}, nil
		},
		MultiRoundTrip: mrtr,
	})
	c.AddReceivingMiddleware(func(next mcpsdk.MethodHandler) mcpsdk.MethodHandler {
		return func(ctx context.Context, method string, req mcpsdk.Request) (mcpsdk.Result, error) {
			if method == "notifications/subscriptions/acknowledged" {
				l.acks <- struct{}{}
			}
			return next(ctx, method, req)
		}
	})
	s, err := c.Connect(ctx, &mcpsdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	l.s = s
	return l
}

// wait returns the next resource update l is sent.
func (l *sdkListener) wait(t *testing.T, ctx context.Context, what string) string {
	t.Helper()
	select {
	case u := <-l.upd:
		return u
	case <-ctx.Done():
		t.Fatalf("%s: no %s", l.name, what)
		return ""
	}
}

func callText(ctx context.Context, s *mcpsdk.ClientSession, p *mcpsdk.CallToolParams) (string, *mcpsdk.CallToolResult, error) {
	res, err := s.CallTool(ctx, p)
	if err != nil {
		return "", nil, err
	}
	b, _ := json.Marshal(res.Content)
	if res.IsError {
		return string(b), res, fmt.Errorf("error result %s", b)
	}
	return string(b), res, nil
}

// TestMCPSubscriptionsListenPerSession: two Go SDK sessions with their
// defaults on one shared Go SDK server each open a subscriptions/listen
// for their own resource. Every resources/updated the server tags with a
// subscriptionId reaches only the session whose listen it names, with that
// session's own request id (a JSON number, as the SDK client numbers its
// requests), never procref's.
func TestMCPSubscriptionsListenPerSession(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := connectListener(t, ctx, e, ws, "A", nil)
	b := connectListener(t, ctx, e, ws, "B", nil)
	for _, l := range []*sdkListener{a, b} {
		uri := "test://" + strings.ToLower(l.name)
		if err := l.s.Subscribe(ctx, &mcpsdk.SubscribeParams{URI: uri}); err != nil {
			t.Fatalf("%s: subscribe: %v", l.name, err)
		}
		select {
		case <-l.acks:
		case <-ctx.Done():
			t.Fatalf("%s: no notifications/subscriptions/acknowledged", l.name)
		}
	}
	for round := 0; round < 2; round++ {
		for _, l := range []*sdkListener{a, b} {
			uri := "test://" + strings.ToLower(l.name)
			if _, _, err := callText(ctx, l.s, &mcpsdk.CallToolParams{Name: "touch", Arguments: map[string]any{"uri": uri}}); err != nil {
				t.Fatalf("%s: touch: %v", l.name, err)
			}
			if got := l.wait(t, ctx, "resources/updated for "+uri); got != uri {
				t.Fatalf("%s got an update for %s, want only its own %s", l.name, got, uri)
			}
		}
	}
	for _, l := range []*sdkListener{a, b} {
		l.mu.Lock()
		t.Logf("%s: updates %v with subscriptionIds %v", l.name, l.uris, l.subID)
		for i, id := range l.subID {
			if _, ok := id.(float64); !ok {
				t.Errorf("%s: update %d (%s) carries subscriptionId %#v, want the session's own numeric listen id", l.name, i, l.uris[i], id)
			}
		}
		l.mu.Unlock()
	}
	if len(a.upd)+len(b.upd) != 0 {
		t.Fatalf("extra updates: A %d, B %d", len(a.upd), len(b.upd))
	}
}

// TestMCPMultiRoundTrip: a Go SDK session with its defaults calls a tool
// that answers input_required with an elicitation; the SDK answers it and
// retries through procref and gets the result. A session that keeps the
// requestState while the server is killed and restarted gets procref's
// -32002 "issue the request again", not the new server's refusal of a
// state it never issued; asked again, the call completes on the new server.
func TestMCPMultiRoundTrip(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	auto := connectListener(t, ctx, e, ws, "auto", nil)
	got, _, err := callText(ctx, auto.s, &mcpsdk.CallToolParams{Name: "ask"})
	if err != nil || !strings.Contains(got, "answer=accept") {
		t.Fatalf("auto: ask through procref: %s %v", got, err)
	}
	oldPID := serverPID(got)

	manual := connectListener(t, ctx, e, ws, "manual", &mcpsdk.MultiRoundTripOptions{Disabled: true})
	_, res, err := callText(ctx, manual.s, &mcpsdk.CallToolParams{Name: "ask"})
	if err != nil {
		t.Fatalf("manual: ask: %v", err)
	}
	if !res.NeedsInput() || res.RequestState == "" {
		t.Fatalf("manual: ask answered %+v, want input_required with a requestState", res)
	}
	pid, err := strconv.Atoi(oldPID)
	if err != nil {
		t.Fatalf("server pid %q: %v", oldPID, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	retry := &mcpsdk.CallToolParams{Name: "ask", RequestState: res.RequestState,
		InputResponses: mcpsdk.InputResponseMap{"confirm": &mcpsdk.ElicitResult{Action: "accept"}}}
	// The kill and the restart race with this retry: until procref has
	// seen the server exit, the old process may still be the target (and
	// the call then fails as a crash). Either way the state must never
	// reach the new server.
	var rpcErr *jsonrpc.Error
	for {
		got, _, err = callText(ctx, manual.s, retry)
		if err == nil {
			t.Fatalf("retry across a restart succeeded: %s", got)
		}
		if errors.As(err, &rpcErr) && rpcErr.Code == -32002 {
			break
		}
		t.Logf("retry: %v", err)
		if strings.Contains(err.Error(), "not this server's") {
			t.Fatalf("the restarted server got the old requestState: %v", err)
		}
		if ctx.Err() != nil {
			logs, _ := filepath.Glob(filepath.Join(e.state, "*"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
			t.Fatalf("no -32002 for a retry across a restart; last: %v", err)
		}
	}
	if !strings.Contains(rpcErr.Message, "again") {
		t.Fatalf("-32002 message %q does not say to issue the request again", rpcErr.Message)
	}
	got, _, err = callText(ctx, auto.s, &mcpsdk.CallToolParams{Name: "ask"})
	if err != nil || !strings.Contains(got, "answer=accept") || serverPID(got) == oldPID {
		t.Fatalf("ask on the restarted server: %s %v (old pid %s)", got, err, oldPID)
	}
}

// TestMCPToolListChangedEverySession: Go SDK sessions with their defaults
// each open a subscriptions/listen for tools/list_changed when they
// connect (the SDK does so for a ToolListChangedHandler). The shared
// server sees one client and keeps one listen; when a tool is added,
// every session listening is told, each under its own listen's id, also
// after the session whose listen the server kept has left.
func TestMCPToolListChangedEverySession(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ls []*sdkListener
	for _, name := range []string{"A", "B", "C"} {
		l := connectListener(t, ctx, e, ws, name, nil)
		select {
		case <-l.acks:
		case <-ctx.Done():
			t.Fatalf("%s: its tools/list_changed listen was never acknowledged", name)
		}
		ls = append(ls, l)
	}
	if _, _, err := callText(ctx, ls[0].s, &mcpsdk.CallToolParams{Name: "addtool", Arguments: map[string]any{"name": "extra"}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		select {
		case <-l.tools:
		case <-ctx.Done():
			t.Fatalf("%s: no tools/list_changed after a tool was added", l.name)
		}
	}
	// The session whose listen the server holds (the last to listen)
	// leaves: the others are still told.
	ls[2].s.Close()
	if _, _, err := callText(ctx, ls[0].s, &mcpsdk.CallToolParams{Name: "addtool", Arguments: map[string]any{"name": "extra2"}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls[:2] {
		select {
		case <-l.tools:
		case <-ctx.Done():
			t.Fatalf("%s: no tools/list_changed after the session holding the server's listen left", l.name)
		}
	}
}
