package proctest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// socketInodes returns the inodes of pid's open sockets (/proc/PID/fd).
func socketInodes(pid int) map[string]bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, _ := os.ReadDir(dir)
	inodes := map[string]bool{}
	for _, ent := range ents {
		l, err := os.Readlink(filepath.Join(dir, ent.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return inodes
}

// ListeningTCP returns the local addresses (hex, as /proc shows them) of
// the TCP sockets, v4 and v6, on which pid listens (Linux; nil elsewhere).
func ListeningTCP(pid int) []string {
	inodes := socketInodes(pid)
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", table))
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			// sl local rem st queues timer retrnsmt uid timeout inode
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				out = append(out, f[1])
			}
		}
	}
	return out
}

// ListeningUnix returns the paths of the unix sockets on which pid listens
// (Linux; nil elsewhere). A socket bound through a directory descriptor,
// as /proc/self/fd/N/NAME (platform.PrivateDir), is named by the path of
// pid's descriptor N: the directory's own path.
func ListeningUnix(pid int) []string {
	inodes := socketInodes(pid)
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", "unix"))
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; Flags 00010000
		// is __SO_ACCEPTCON: a listening socket.
		if len(f) > 7 && f[3] == "00010000" && inodes[f[6]] {
			out = append(out, viaFD(pid, f[7]))
		}
	}
	return out
}

// viaFD turns /proc/self/fd/N/NAME, as pid bound it, into DIR/NAME, DIR
// being what pid's descriptor N names.
func viaFD(pid int, p string) string {
	rest, ok := strings.CutPrefix(p, "/proc/self/fd/")
	if !ok {
		return p
	}
	fd, name, ok := strings.Cut(rest, "/")
	if !ok {
		return p
	}
	dir, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd))
	if err != nil {
		return p
	}
	return filepath.Join(dir, name)
}
