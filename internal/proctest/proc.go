package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Proc is one live process as /proc shows it (Linux; elsewhere Processes
// returns nothing).
type Proc struct {
	PID, PPID int
	Comm      string // kernel command name (a thread may rename it: clangd's is "clangd.main")
	Argv0     string // file name of argv[0]
	Cmdline   string // the command line, arguments joined by spaces
}

// Is reports whether the process runs the program name: its command name (a
// script's file name, e.g. pylsp) or argv[0]'s file name is name.
func (p Proc) Is(name string) bool { return p.Comm == name || p.Argv0 == name }

// IsProxy reports whether the process is a procref proxy.
func (p Proc) IsProxy() bool { return p.Is("procref") }

// ProxySignals is the SigCgt mask of the signals a proxy catches once its
// handler is installed (SIGHUP, SIGINT, SIGTERM: bits 0, 1 and 14).
const ProxySignals = 1<<0 | 1<<1 | 1<<14

// CaughtSignals returns pid's SigCgt mask from /proc/PID/status: the
// signals it has handlers for (0 if unknown).
func CaughtSignals(pid int) uint64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return 0
}

// Processes lists live (not zombie, not dead) processes from /proc.
func Processes() []Proc {
	var out []Proc
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		p := Proc{PID: pid, PPID: ppid, Comm: s[open+1 : close]}
		if cl, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline")); err == nil {
			arg0, _, _ := strings.Cut(string(cl), "\x00")
			p.Argv0 = filepath.Base(arg0)
			p.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
		}
		out = append(out, p)
	}
	return out
}

// ReadChars returns the bytes process pid has read so far (rchar in
// /proc/PID/io; Linux), or -1: a test waits for it to grow to know a
// process has read what was sent to it.
func ReadChars(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// Stopped reports whether every thread of process pid is stopped (state T
// or t in /proc/PID/task/*/stat; Linux). kill(SIGSTOP) returns before the
// process's threads have all stopped: a test that needs the process to do
// nothing more waits for Stopped.
func Stopped(pid int) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return false
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(dir, ent.Name(), "stat"))
		if err != nil {
			return false
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) == 0 || f[0] != "T" && f[0] != "t" {
			return false
		}
	}
	return true
}
