package launcher_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/procref/procref/launcher"
)

// greetService is a service the supervisor serves itself: each
// [launcher.Service.Attach] gets a connection to Serve, which runs in the
// supervisor process (as procref's host serves editor windows).
func greetService() *launcher.Service {
	return &launcher.Service{
		Name:           "example-greet",
		Key:            launcher.Key("example-greet", os.Getenv("PROCREF_RUNTIME_DIR")),
		HealthInterval: -1,
		Serve: func(ctx context.Context, conn net.Conn, peer launcher.Peer) {
			defer conn.Close()
			name, _ := bufio.NewReader(conn).ReadString('\n')
			fmt.Fprintf(conn, "hello, %s (from the supervisor)\n", strings.TrimSpace(name))
		},
	}
}

// Attach starts the supervisor if needed and returns a connection to its
// Serve; the session holds a reference until it is released.
func ExampleService_Attach() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sess, err := greetService().Attach(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(sess.Conn, "editor")
	reply, _ := bufio.NewReader(sess.Conn).ReadString('\n')
	fmt.Print(reply)
	sess.Conn.Close()
	sess.Release()
	// The last reference is gone: the supervisor exits.
	if err := sess.Supervisor.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("supervisor running:", sess.Supervisor.Alive())
	// Output:
	// hello, editor (from the supervisor)
	// supervisor running: false
}

// A status tool asks a running supervisor for its state without taking a
// reference, and stops it whoever holds references: RequestStop returns
// once the supervisor has exited, and the holders' handles report it.
func ExampleService_RequestStop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc := echoService()
	h, err := svc.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer h.Release()

	// Only Name (and Dir) are needed to find the supervisor.
	probe := &launcher.Service{Name: svc.Name}
	st, err := probe.QueryStatus(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("references:", st.Count, "same port:", st.Info.Port == h.Info().Port)

	if err := probe.RequestStop(ctx); err != nil {
		log.Fatal(err)
	}
	<-h.Done()
	fmt.Println("supervisor running:", h.Supervisor().Alive())
	_, err = probe.QueryStatus(ctx)
	fmt.Println("not running:", errors.Is(err, launcher.ErrNotRunning))
	// Output:
	// references: 1 same port: true
	// supervisor running: false
	// not running: true
}
