package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// goSDKServer is the test helper "gosdk": an official Go SDK v1.8.0 server
// on stdio (it serves 2025-11-25 and 2026-07-28) with a shared counter
// ("incr", answering the count and its pid), a slow tool that sends
// progress ("slow"; with hold it then waits for "release" or its cancel),
// subscribable resources test://a and test://b ("touch" reports one
// updated), and a multi round-trip tool ("ask": input_required with an
// elicitation, answered on the retry with the client's action and the
// server's pid; a requestState from another server process is refused),
// and "addtool", which adds a tool (tools/list_changed).
func goSDKServer() int {
	var mu sync.Mutex
	count := 0
	release := make(chan struct{})
	var once sync.Once
	noop := func(context.Context, *mcpsdk.SubscribeRequest) error { return nil }
	s := mcpsdk.NewServer(&mcpsdk.Implementation{Name: "procref-gosdk-test", Version: "1.0.0"}, &mcpsdk.ServerOptions{
		SubscribeHandler:   noop,
		UnsubscribeHandler: func(context.Context, *mcpsdk.UnsubscribeRequest) error { return nil },
	})
	for _, uri := range []string{"test://a", "test://b"} {
		s.AddResource(&mcpsdk.Resource{URI: uri, Name: uri}, func(_ context.Context, req *mcpsdk.ReadResourceRequest) (*mcpsdk.ReadResourceResult, error) {
			return &mcpsdk.ReadResourceResult{Contents: []*mcpsdk.ResourceContents{{URI: req.Params.URI, Text: "x"}}}, nil
		})
	}
	text := func(s string) *mcpsdk.CallToolResult {
		return &mcpsdk.CallToolResult{Content: []mcpsdk.Content{&mcpsdk.TextContent{Text: s}}}
	}
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "incr"}, func(ctx context.Context, req *mcpsdk.CallToolRequest, _ struct{}) (*mcpsdk.CallToolResult, any, error) {
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		return text(fmt.Sprintf("count=%d pid=%d", n, os.Getpid())), nil, nil
	})
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "release"}, func(ctx context.Context, req *mcpsdk.CallToolRequest, _ struct{}) (*mcpsdk.CallToolResult, any, error) {
		once.Do(func() { close(release) })
		return text("released"), nil, nil
	})
	type touchIn struct {
		URI string `json:"uri"`
	}
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "touch"}, func(ctx context.Context, req *mcpsdk.CallToolRequest, in touchIn) (*mcpsdk.CallToolResult, any, error) {
		if err := s.ResourceUpdated(ctx, &mcpsdk.ResourceUpdatedNotificationParams{URI: in.URI}); err != nil {
			return nil, nil, err
		}
		return text("touched " + in.URI), nil, nil
	})
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "addtool"}, func(ctx context.Context, req *mcpsdk.CallToolRequest, in struct {
		Name string `json:"name"`
	}) (*mcpsdk.CallToolResult, any, error) {
		mcpsdk.AddTool(s, &mcpsdk.Tool{Name: in.Name}, func(context.Context, *mcpsdk.CallToolRequest, struct{}) (*mcpsdk.CallToolResult, any, error) {
			return text(in.Name), nil, nil
		})
		return text("added " + in.Name), nil, nil
	})
	state := fmt.Sprintf("pid-%d", os.Getpid())
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "ask"}, func(ctx context.Context, req *mcpsdk.CallToolRequest, _ struct{}) (*mcpsdk.CallToolResult, any, error) {
		if len(req.Params.InputResponses) == 0 {
			return &mcpsdk.CallToolResult{
				InputRequests: mcpsdk.InputRequestMap{"confirm": &mcpsdk.ElicitParams{Message: "go on?"}},
				RequestState:  state,
			}, nil, nil
		}
		if req.Params.RequestState != state {
			return nil, nil, fmt.Errorf("ask: requestState %q is not this server's", req.Params.RequestState)
		}
		action := "?"
		if r, ok := req.Params.InputResponses["confirm"].(*mcpsdk.ElicitResult); ok {
			action = r.Action
		}
		return text(fmt.Sprintf("answer=%s pid=%d", action, os.Getpid())), nil, nil
	})
	type slowIn struct {
		Steps int  `json:"steps,omitempty"`
		Hold  bool `json:"hold,omitempty"`
	}
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "slow"}, func(ctx context.Context, req *mcpsdk.CallToolRequest, in slowIn) (*mcpsdk.CallToolResult, any, error) {
		tok := req.Params.GetProgressToken()
		for i := 1; i <= in.Steps; i++ {
			if tok != nil {
				req.Session.NotifyProgress(ctx, &mcpsdk.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: float64(in.Steps)})
			}
		}
		if in.Hold {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("slow: cancelled: %w", ctx.Err())
			}
		}
		return text("done"), nil, nil
	})
	if err := s.Run(context.Background(), &mcpsdk.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "gosdk server:", err)
		return 1
	}
	return 0
}
