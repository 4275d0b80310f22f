package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// origin names where a flag's value came from, for errors: "--NAME" when
// it was given on the command line (or not at all), else the environment
// variable that set it.
func origin(fs *flag.FlagSet, name, env string) string {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if set || os.Getenv(env) == "" {
		return "--" + name
	}
	return env
}

// parseBytes reads a size in bytes: a whole number, optionally with a
// K, M or G suffix (powers of 1024; KiB, MiB, GiB and KB, MB, GB mean the
// same).
func parseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: use a number of bytes like 67108864, 64M or 512K", s)
	}
	return v * mult, nil
}

// bytesValue is a flag.Value for sizes (parseBytes).
type bytesValue int64

func (b *bytesValue) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *bytesValue) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = bytesValue(v)
	return nil
}

// checkName refuses a backend name that cannot be a file name in the
// runtime dir: it names the hint, lock, socket and log files.
func checkName(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > 64 || strings.HasPrefix(name, ".") || strings.IndexFunc(name, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) >= 0 {
		return fmt.Errorf("%q is not a backend name: use letters, digits, '.', '-' and '_' (at most 64, not starting with '.')", name)
	}
	return nil
}

// checkHandoff refuses a PROCREF_HANDOFF other than unset, 0 or 1.
func checkHandoff() error {
	switch v := os.Getenv("PROCREF_HANDOFF"); v {
	case "", "0", "1":
		return nil
	default:
		return fmt.Errorf("PROCREF_HANDOFF=%q: use 0 (relay through the proxy) or 1 (hand the editor's stdio to the host, the default)", v)
	}
}
