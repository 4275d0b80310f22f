package launcher_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"time"

	"github.com/procref/procref/launcher"
	"github.com/procref/procref/refcount"
)

// echoService describes the example's shared service: a tiny TCP echo
// server that runs inside the supervisor process. A program registers its
// services before calling launcher.Main, usually in a package-level var:
//
//	var echo = launcher.Register(echoService())
//
//	func main() {
//		launcher.Main() // a re-executed supervisor runs here and exits
//		...
//	}
//
// Here TestMain does both. The key includes the runtime dir only so that
// concurrent test runs never share a reference count.
func echoService() *launcher.Service {
	var ln net.Listener
	return &launcher.Service{
		Name:           "example-echo",
		Key:            launcher.Key("example-echo", os.Getenv("PROCREF_RUNTIME_DIR")),
		HealthInterval: -1,
		Hooks: launcher.Hooks{
			OnFirstAcquire: func(ctx context.Context) (launcher.Info, error) {
				var err error
				ln, err = net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return launcher.Info{}, err
				}
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go func() {
							defer c.Close()
							s := bufio.NewScanner(c)
							for s.Scan() {
								fmt.Fprintln(c, s.Text())
							}
						}()
					}
				}()
				return launcher.Info{Port: ln.Addr().(*net.TCPAddr).Port}, nil
			},
			OnLastRelease: func(ctx context.Context, info launcher.Info) error {
				return ln.Close()
			},
		},
	}
}

// Two acquirers (here in one process; usually separate programs) share one
// service: the first Acquire starts it in a supervisor process, the second
// finds it, and the supervisor stops it when the last reference is gone.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc := echoService()

	a, err := svc.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	b, err := svc.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same port:", a.Info().Port == b.Info().Port)
	n, _ := svc.Count()
	fmt.Println("references:", n)

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.Info().Port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(conn, "hello")
	reply, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	fmt.Print("echo: ", reply)

	supervisor := a.Supervisor()
	a.Release()
	b.Release()
	// The last release ends the service: its supervisor runs OnLastRelease
	// and exits.
	if err := supervisor.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("supervisor running:", supervisor.Alive())
	// Output:
	// same port: true
	// references: 2
	// echo: hello
	// supervisor running: false
}

// cleanupExampleService removes the example's reference counter, which the
// supervisor leaves only if it was killed.
func cleanupExampleService() {
	dir := os.Getenv("PROCREF_RUNTIME_DIR")
	if _, err := os.Stat(dir); err != nil {
		return
	}
	s := echoService()
	if c, err := refcount.Open(s.Name, s.Key, refcount.Options{Dir: dirOf(dir)}); err == nil {
		if n, err := c.Count(); err == nil && n == 0 {
			c.Remove()
		}
		c.Close()
	}
}

// A service name is file-name safe and short; the key decides identity.
func ExampleName() {
	key := "0123456789abcdef0123456789abcdef"
	fmt.Println(launcher.Name("/usr/local/bin/my server", key))
	// Output: my_server-0123456789ab
}

// A Service is checked before anything is created.
func ExampleService_Validate() {
	svc := &launcher.Service{Name: "../escape", Key: "k"}
	fmt.Println(svc.Validate())
	// Output: invalid service "../escape": Name must be 1-200 letters, digits, '-', '_' or '.', not starting with '.' (see launcher.Name)
}
