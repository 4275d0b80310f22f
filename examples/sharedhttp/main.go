// Command sharedhttp shares one toy HTTP server (a child process) among every
// copy of this program that runs at the same time: the first copy starts it,
// the others use it, and it stops when the last copy exits, even with
// kill -9. It shows the whole launcher lifecycle: start, stop, health check
// and recover.
//
//	go run ./examples/sharedhttp          # print who serves, then exit
//	go run ./examples/sharedhttp -hold    # the same, then hold the service
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"time"

	"github.com/procref/procref/launcher"
)

// serveEnv makes this program the HTTP server child itself.
const serveEnv = "SHAREDHTTP_PORT"

var key = launcher.Key("sharedhttp-example")

var svc = launcher.Register(&launcher.Service{
	Name: launcher.Name("sharedhttp", key),
	Key:  key,
	Hooks: launcher.Hooks{
		OnFirstAcquire: start,
		OnLastRelease:  func(ctx context.Context, info launcher.Info) error { return launcher.StopChild(info, 2*time.Second) },
		OnHealthCheck:  func(ctx context.Context, info launcher.Info) error { _, err := get(ctx, info.Port); return err },
		OnRecover: func(ctx context.Context, old launcher.Info, _ error) (launcher.Info, error) {
			launcher.StopChild(old, 2*time.Second)
			return start(ctx)
		},
	},
})

// start runs the HTTP server child on a free port and waits until it answers.
func start(ctx context.Context) (launcher.Info, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return launcher.Info{}, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return launcher.Info{}, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), serveEnv+"="+strconv.Itoa(port))
	info, err := launcher.StartChild(ctx, cmd, func(ctx context.Context) error { _, err := get(ctx, port); return err })
	info.Port = port
	return info, err
}

func get(ctx context.Context, port int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func main() {
	launcher.Main() // first thing: a copy started as the supervisor stays here
	if port := os.Getenv(serveEnv); port != "" {
		log.Fatal(http.ListenAndServe("127.0.0.1:"+port, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "pid %d", os.Getpid())
		})))
	}
	hold := flag.Bool("hold", false, "hold the service until killed")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h, err := svc.Acquire(ctx)
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer h.Release()
	body, err := get(context.Background(), h.Info().Port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("served by %s on port %d\n", body, h.Info().Port)
	if *hold {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		select {
		case <-h.Done():
			log.Fatal(h.Err())
		case <-sig:
		}
	}
}
