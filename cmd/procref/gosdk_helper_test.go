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
// progress ("slow"; with hold it then waits for "release" or its cancel).
func goSDKServer() int {
	var mu sync.Mutex
	count := 0
	release := make(chan struct{})
	var once sync.Once
	s := mcpsdk.NewServer(&mcpsdk.Implementation{Name: "procref-gosdk-test", Version: "1.0.0"}, nil)
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
