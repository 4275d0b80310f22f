package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/refcount"
)

// backendRow is one row of `procref status`.
type backendRow struct {
	Name       string `json:"name"`
	State      string `json:"state"` // running, stale, draining, superseded (binary changed)
	Reason     string `json:"reason,omitempty"`
	Mode       string `json:"mode,omitempty"`
	HostPID    int    `json:"host_pid,omitempty"`
	BackendPID int    `json:"backend_pid,omitempty"`
	Port       int    `json:"port,omitempty"`
	// Transport is how proxies reach the host: "unix PATH" (its socket in
	// the private runtime dir) or "tcp 127.0.0.1:PORT (loopback port,
	// fallback)", which every local user can connect to.
	Transport  string   `json:"transport,omitempty"`
	References int      `json:"references"`
	Clients    int      `json:"clients"`
	Uptime     float64  `json:"uptime_seconds,omitempty"`
	BackendRSS uint64   `json:"backend_rss_bytes,omitempty"`
	Root       string   `json:"root,omitempty"`
	Command    []string `json:"command,omitempty"`
	Log        string   `json:"log,omitempty"`
	// Listen is a tcp-mode backend's own address: its unix socket, or a
	// loopback port (then Warning says who can reach it).
	Listen  string `json:"listen,omitempty"`
	Warning string `json:"warning,omitempty"`
	// GroupLeft: the backend's process group (it leads one) still has
	// processes although the backend itself is gone, or its host is
	// stale: children of a wrapper (npx, uvx, sh -c) left running.
	GroupLeft bool `json:"group_left,omitempty"`
}

// runtimeDir is the process's checked handle on procref's runtime dir
// (platform.RuntimeDir, opened by launcher.Service.PrivateDir: never
// closed).
func runtimeDir() (*platform.PrivateDir, error) {
	dir, err := platform.RuntimeDir()
	if err != nil {
		return nil, err
	}
	return (&launcher.Service{Dir: dir}).PrivateDir()
}

// collectStatus reads every hint in the runtime dir and asks each live host.
func collectStatus(ctx context.Context) ([]backendRow, string, error) {
	dir, err := runtimeDir()
	if err != nil {
		return nil, "", err
	}
	names, err := discovery.List(dir)
	if err != nil {
		return nil, dir.Path(), err
	}
	counts := map[string]int{}
	if infos, err := refcount.List(refcount.Options{Dir: dir}); err == nil {
		for _, in := range infos {
			counts[in.Name] = in.Count
		}
	}
	var rows []backendRow
	for _, name := range names {
		row := backendRow{Name: name, References: counts[name]}
		h, err := discovery.Read(dir, name)
		if err != nil {
			row.State, row.Reason = "stale", err.Error()
			rows = append(rows, row)
			continue
		}
		row.Mode, row.HostPID, row.Port, row.Root, row.Command, row.Log = h.Mode, h.Host.PID, h.Port, h.Root, h.Command, h.Log
		row.BackendPID = h.Backend.PID
		row.Transport = h.Transport()
		st, err := (&launcher.Service{Name: name, Dir: dir.Path()}).QueryStatus(ctx)
		switch {
		case err == nil:
			row.State = "running"
			row.Clients, row.References, row.Uptime = st.Clients, st.Count, st.Uptime
			if st.Info.PID > 0 {
				row.BackendPID = st.Info.PID
			}
			if st.Info.Port > 0 {
				addr := hostproto.Addr{Network: "tcp", Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(st.Info.Port))}
				row.Listen, row.Warning = addr.Address, hostproto.PortWarning(addr)
			} else if p := st.Info.Data["socket"]; p != "" {
				row.Listen = p
			}
			if pid, ok := st.Extra["backend_pid"].(float64); ok && pid > 0 {
				row.BackendPID = int(pid) // mux mode: the mux starts the backend
			}
		case errors.Is(err, handshake.ErrDraining):
			row.State = "draining"
		default:
			row.State, row.Reason = "stale", err.Error()
		}
		if row.BackendPID > 0 && row.State == "running" {
			row.BackendRSS, _ = platform.RSS(row.BackendPID)
		}
		if row.BackendPID > 0 && platform.ProcessGroupAlive(row.BackendPID) {
			_, lerr := platform.Lookup(row.BackendPID)
			row.GroupLeft = lerr != nil || row.State != "running"
		}
		if row.State == "running" && hostproto.Superseded(h.Identity, h.Dir, h.Command) {
			// New windows get a new backend; this one drains when its
			// last window leaves.
			row.State = "superseded (binary changed)"
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows, dir.Path(), nil
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("procref status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	wide := fs.Bool("wide", false, "also show port, root, log and the whole command (wider than 120 columns)")
	if pos, err := parseArgs(fs, args, stderr); err != nil || len(pos) > 0 {
		if err == nil {
			fmt.Fprintf(stderr, "procref status: unexpected argument %q\n", pos[0])
		}
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, dir, err := collectStatus(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "procref status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		if rows == nil {
			rows = []backendRow{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return exitOK
	}
	printStatus(stdout, rows, dir, *wide)
	return exitOK
}

// printStatus prints the table: by default the columns that fit 120
// columns (a long name is clipped, a long root keeps its end); wide adds
// the port, log and whole command, unclipped.
func printStatus(w io.Writer, rows []backendRow, dir string, wide bool) {
	if len(rows) == 0 {
		fmt.Fprintf(w, "no shared backends (runtime dir %s)\n", dir)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if wide {
		fmt.Fprintln(tw, "NAME\tSTATE\tMODE\tPID\tTRANSPORT\tREFS\tCLIENTS\tUPTIME\tRSS\tROOT\tCOMMAND\tLOG")
	} else {
		fmt.Fprintln(tw, "NAME\tSTATE\tMODE\tPID\tREFS\tCLIENTS\tUPTIME\tRSS\tROOT")
	}
	for _, r := range rows {
		pid := "-"
		if r.BackendPID > 0 {
			pid = fmt.Sprint(r.BackendPID)
		} else if r.HostPID > 0 {
			pid = fmt.Sprintf("host %d", r.HostPID)
		}
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
				r.Name, r.State, dash(r.Mode), pid, transport(r), r.References, r.Clients,
				uptime(r.Uptime), rss(r.BackendRSS), dash(r.Root), dash(strings.Join(r.Command, " ")), dash(r.Log))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n",
			clip(r.Name, 26), clip(r.State, 10), dash(r.Mode), clip(pid, 12), r.References, r.Clients,
			clip(uptime(r.Uptime), 10), clip(rss(r.BackendRSS), 7), dash(clipLeft(r.Root, 23)))
	}
	tw.Flush()
	for _, r := range rows {
		if r.State == "stale" && r.Reason != "" {
			next := " (the next start replaces it)"
			if strings.Contains(r.Reason, "remove it") {
				next = "" // procref does not remove it (a directory at the hint path)
			}
			fmt.Fprintf(w, "%s is stale: %s%s\n", r.Name, r.Reason, next)
		}
		if r.Warning != "" {
			fmt.Fprintf(w, "warning: %s: %s\n", r.Name, r.Warning)
		}
		if strings.HasPrefix(r.Transport, "tcp") {
			fmt.Fprintf(w, "warning: %s: the host is on loopback port %d (fallback), which every local user can reach\n", r.Name, r.Port)
		}
		if r.GroupLeft {
			fmt.Fprintf(w, "warning: %s: processes of the backend's process group %d are still running; end them with `kill -- -%d`\n", r.Name, r.BackendPID, r.BackendPID)
		}
	}
}

// clip shortens s to n runes, marking the cut with "…".
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// clipLeft is clip keeping the end (of a path).
func clipLeft(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// transport is the TRANSPORT column: "unix" (the host's socket) or
// "tcp:PORT" (the loopback fallback).
func transport(r backendRow) string {
	switch {
	case strings.HasPrefix(r.Transport, "unix"):
		return "unix"
	case r.Port > 0:
		return "tcp:" + strconv.Itoa(r.Port)
	}
	return "-"
}

func uptime(s float64) string {
	if s == 0 {
		return "-"
	}
	return (time.Duration(s) * time.Second).Round(time.Second).String()
}

func rss(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
}

func cmdStop(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("procref stop", flag.ContinueOnError)
	all := fs.Bool("all", false, "stop every backend")
	timeout := durationValue(10 * time.Second)
	fs.Var(&timeout, "timeout", "how long to wait for a graceful stop before killing")
	names, err := parseArgs(fs, args, stderr)
	if err != nil {
		return exitUsage
	}
	if (*all && len(names) > 0) || (!*all && len(names) != 1) {
		fmt.Fprintln(stderr, "procref stop: name one backend (see `procref status`) or use --all")
		return exitUsage
	}
	dir, err := runtimeDir()
	if err != nil {
		fmt.Fprintf(stderr, "procref stop: %v\n", err)
		return exitFailure
	}
	known, err := discovery.List(dir)
	if err != nil {
		fmt.Fprintf(stderr, "procref stop: %v\n", err)
		return exitFailure
	}
	if *all {
		names = known
	} else if names[0], err = resolveName(names[0], known); err != nil {
		fmt.Fprintf(stderr, "procref stop: %v\n", err)
		return exitFailure
	}
	code := exitOK
	for _, name := range names {
		if err := stopOne(dir, name, time.Duration(timeout)); err != nil {
			fmt.Fprintf(stderr, "procref stop %s: %v\n", name, err)
			code = exitFailure
			continue
		}
		fmt.Fprintf(stdout, "stopped %s\n", name)
	}
	return code
}

// stopOne asks the host to drain; if it does not exit within timeout, it is
// terminated and then killed (by identity: a reused pid is never signalled).
func stopOne(dir *platform.PrivateDir, name string, timeout time.Duration) error {
	h, err := discovery.Read(dir, name)
	if errors.Is(err, discovery.ErrNoHint) {
		return fmt.Errorf("no backend named %s (see `procref status`)", name)
	}
	if err != nil {
		discovery.Remove(dir, name, "")
		return nil // a stale hint: removing it is all there is to stop
	}
	// Graceful: ask the host to drain (it stops the backend with LSP
	// shutdown/exit or SIGTERM). A host that does not answer or does not
	// exit in time is terminated, then killed, by identity.
	if h.Host.Alive() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := (&launcher.Service{Name: h.Name, Dir: dir.Path()}).RequestStop(ctx); err == nil || errors.Is(err, launcher.ErrDraining) {
			h.Host.Wait(ctx)
		}
		if h.Host.Alive() {
			if err := h.Host.Stop(5 * time.Second); err != nil && !errors.Is(err, platform.ErrNoProcess) && !errors.Is(err, platform.ErrIdentityChanged) {
				return err
			}
		}
	}
	if h.Backend.PID > 0 && h.Backend.Alive() {
		// The backend dies with its host (parent-death signal); this is
		// for platforms without one.
		h.Backend.Stop(2 * time.Second)
	}
	discovery.Remove(dir, name, h.Nonce)
	return nil
}

func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("procref logs", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow the log")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "procref logs: name one backend (see `procref status`)")
		return exitUsage
	}
	name := pos[0]
	if strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		fmt.Fprintf(stderr, "procref logs: bad name %q\n", name)
		return exitUsage
	}
	dir, err := platform.StateDir()
	if err != nil {
		fmt.Fprintf(stderr, "procref logs: %v\n", err)
		return exitFailure
	}
	if name, err = resolveName(name, logNames(dir)); err != nil {
		fmt.Fprintf(stderr, "procref logs: %v\n", err)
		return exitFailure
	}
	path := dir + string(os.PathSeparator) + name + ".log"
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "procref logs: no log for %s (%v); see `procref status` for names\n", name, err)
		return exitFailure
	}
	defer f.Close()
	io.Copy(stdout, f)
	if !*follow {
		return exitOK
	}
	// Follow: files offer no portable change event, so poll gently.
	for {
		time.Sleep(200 * time.Millisecond)
		if _, err := io.Copy(stdout, f); err != nil {
			return exitFailure
		}
	}
}
