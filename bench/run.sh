#!/usr/bin/env bash
# bench/run.sh — procref's benchmarks (issue 4, item 6); results go to
# bench/results.md.
#
# Builds procref (as a user would: `CGO_ENABLED=0 go build ./cmd/procref`) and
# bench/procbench into a temporary directory, prints the date, the machine
# (nproc, lscpu, free, kernel, load), the Go, gopls and procref versions and
# the commit, then runs procbench, which measures in one run and prints
# markdown tables:
#   - attach: exec → first byte at the backend / on stdout / `initialize`
#     answered, and the exit code after a clean quit, for procref warm and
#     cold (echo backend and gopls in tcp mode), `gopls -remote=auto` warm,
#     and gopls started directly;
#   - round-trip latency of a small message through the proxy vs direct TCP
#     to the same backend (p50/p90/p99), plus reference relays;
#   - throughput for 1 KiB, 64 KiB and 16 MiB messages, proxy vs direct;
#   - RSS of the proxy (and the gopls forwarder, for comparison);
#   - the goals, met or not.
#
# Usage:
#   bench/run.sh [procbench flags]      e.g. bench/run.sh -n 25
#                                            bench/run.sh -only latency,throughput
#                                            bench/run.sh -only mux   (mux mode: procref -- procbench lsp-echo)
#   With a C compiler, bench/crelay.c is built and measured as a reference
#   relay, and so is cat (see "Round trip" in bench/results.md).
# Environment:
#   SRC=head               build procref and procbench from the committed HEAD
#                          (git archive) instead of the working tree, so the
#                          numbers belong to a commit while others edit the tree
#   GOPLS=/path/to/gopls   default: gopls in PATH, else $(go env GOPATH)/bin/gopls
#   OUT=file               also write the whole report (markdown) to file
#   JSON=file              also write the raw samples (JSON) to file
#
# Everything runs with private PROCREF_RUNTIME_DIR, PROCREF_STATE_DIR,
# XDG_RUNTIME_DIR and TMPDIR (so nothing collides with other users of procref
# or of the gopls daemon), and every process started is stopped at the end,
# also on Ctrl-C. The Go benchmark functions are separate:
#   go -C bench test -run '^$' -bench . ./procbench
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(mktemp -d "${TMPDIR:-/tmp}/procref-bench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT

src=$root
built="working tree$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ', with uncommitted changes')"
if [[ ${SRC:-} == head ]]; then
	src="$bin/src"
	mkdir "$src"
	git -C "$root" archive HEAD | tar -x -C "$src"
	built="HEAD"
fi
(cd "$src" && CGO_ENABLED=0 go build -o "$bin/procref" ./cmd/procref && go -C bench build -o "$bin/procbench" ./procbench &&
	go -C bench build -o "$bin/emptymain" ./emptymain)

gopls=${GOPLS:-$(command -v gopls || true)}
if [[ -z $gopls ]]; then
	gopls="$(go env GOPATH | cut -d: -f1)/bin/gopls"
fi
args=(-procref "$bin/procref" -gopls "$gopls" -floor "$bin/emptymain")
if true=$(type -P true); then
	args+=(-floor "$true")
fi
# Reference relays next to procref's proxy: a minimal C relay (the floor for
# any relay process on this machine) when a C compiler is present, and cat
# (a stdio echo with no TCP at all: the client's pipe ceiling).
if cc=$(type -P cc || type -P gcc); then
	if "$cc" -O2 -pthread -o "$bin/crelay" "$root/bench/crelay.c" 2>/dev/null; then
		args+=(-relay-cmd "$bin/crelay {addr}" -mux-relay-cmd "$bin/crelay -exec")
	fi
fi
if cat=$(type -P cat); then
	args+=(-relay-cmd "$cat")
fi
if [[ -n ${JSON:-} ]]; then
	args+=(-json "$JSON")
fi

report() {
	echo "## Run of $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "Command: \`${SRC:+SRC=$SRC }bench/run.sh${*:+ ${*@Q}}\` — built from the $built at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo
	echo '```'
	echo "\$ date; nproc; uname -srm; lscpu | head -n 20; free -h"
	date
	nproc
	uname -srm
	lscpu | head -n 20
	free -h
	echo "\$ go version; gopls version; procref version"
	go version
	"$gopls" version 2>/dev/null | head -n 1 || echo "gopls: not found at $gopls"
	"$bin/procref" version
	echo "\$ uptime   # before"
	uptime
	echo '```'
	echo
	"$bin/procbench" "${args[@]}" "$@"
	echo '```'
	echo "\$ uptime   # after"
	uptime
	echo '```'
}

if [[ -n ${OUT:-} ]]; then
	report "$@" | tee "$OUT"
else
	report "$@"
fi
