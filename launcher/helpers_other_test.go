//go:build !linux

package launcher_test

import (
	"fmt"
	"os"

	"github.com/procref/procref/launcher"
)

// The multi-process lifecycle tests run on Linux (toy_linux_test.go); other
// systems run the example.
func registerTestServices() {
	launcher.Register(echoService())
	launcher.Register(greetService())
}

func runHelper() int {
	fmt.Fprintf(os.Stderr, "helper %q: not on this OS\n", os.Getenv(helperEnv))
	return 2
}
