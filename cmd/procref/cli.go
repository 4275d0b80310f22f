package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// parseArgs parses fs over args, flags before and after the positional
// arguments alike (`procref logs NAME -f`), and returns the positional
// ones. After "--" everything is positional. On a bad flag it prints the
// error and the flag list once to stderr.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard) // printed once below, not by every Parse
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			}
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "flags of %s:\n", fs.Name())
			fs.PrintDefaults()
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// durationValue is a time.Duration flag whose error says what a duration
// looks like (a bare "5" is the usual slip).
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

// parseDuration is time.ParseDuration with an error that shows the form.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use a duration like 5s, 500ms or 2m", s)
	}
	return v, nil
}

// subcommands are the words run dispatches on, for suggestions.
var subcommands = []string{"status", "stop", "logs", "demo", "sample-server", "version", "help"}

// suggestCommand returns the subcommand word is a likely typo of (at most
// two edits away), or "".
func suggestCommand(word string) string {
	best, bestD := "", 3
	for _, c := range subcommands {
		if d := editDistance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
