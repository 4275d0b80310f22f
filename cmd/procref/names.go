package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// resolveName maps what the user typed to one backend name among known:
// the name itself, or the one known name that is it plus "-<key hex>"
// (`procref stop clangd` for clangd-0123456789ab). Otherwise the error
// says which names there are.
func resolveName(name string, known []string) (string, error) {
	var matches []string
	for _, k := range known {
		if k == name {
			return k, nil
		}
		if rest, ok := strings.CutPrefix(k, name+"-"); ok && isHex(rest) {
			matches = append(matches, k)
		}
	}
	sort.Strings(matches)
	switch {
	case len(matches) == 1:
		return matches[0], nil
	case len(matches) > 1:
		return "", fmt.Errorf("%s matches %d backends: %s; name one", name, len(matches), strings.Join(matches, ", "))
	case len(known) == 0:
		return "", fmt.Errorf("no backend named %s: there are none (see `procref status`)", name)
	}
	all := append([]string(nil), known...)
	sort.Strings(all)
	return "", fmt.Errorf("no backend named %s; there are: %s", name, strings.Join(all, ", "))
}

func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}

// logNames lists the backend names that have a log in dir.
func logNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".log"); ok && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	return names
}
