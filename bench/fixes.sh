#!/usr/bin/env bash
# bench/fixes.sh — measure the fixes proposed in docs/benchmarks.md against
# the committed HEAD, interleaved in one bench/run.sh run.
#
# Builds from `git archive HEAD` (the working tree is not used):
#   static     CGO_ENABLED=0 go build (no dynamic loader, no libc)
#   pipes      + bench/patches/pipes.diff   (1 MiB stdio pipes, 1 MiB copy buffer)
#   poll1ms    + bench/patches/poll1ms.diff (tcp-mode readiness dial every 1 ms)
#   all-three  all of the above
# and, if a C compiler is found, bench/crelay.c (a minimal C relay, the floor
# for any relay process), then runs
#   SRC=head bench/run.sh -compare static=... -compare pipes=... ... "$@"
# The patches were made against commit a38d55c; if one no longer applies,
# that variant is skipped with a message.
#
# Usage: bench/fixes.sh [procbench flags]     e.g. bench/fixes.sh -n 20
# Environment: as bench/run.sh (OUT, JSON, GOPLS).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/procref-fixes.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

args=()
# variant NAME CGO PATCH... builds $tmp/NAME (CGO "" = go's default).
variant() {
	local name=$1 cgo=$2
	shift 2
	rm -rf "$tmp/src"
	mkdir "$tmp/src"
	git -C "$root" archive HEAD | tar -x -C "$tmp/src"
	local p
	for p in "$@"; do
		if ! (cd "$tmp/src" && git apply "$root/bench/patches/$p.diff"); then
			echo "fixes.sh: bench/patches/$p.diff does not apply to HEAD; skipping $name" >&2
			return 0
		fi
	done
	(cd "$tmp/src" && env ${cgo:+CGO_ENABLED=$cgo} go build -o "$tmp/$name" ./cmd/procref)
	args+=(-compare "$name=$tmp/$name")
}
variant static 0
variant pipes "" pipes
variant poll1ms "" poll1ms
variant all-three 0 pipes poll1ms

if cc=$(type -P cc || type -P gcc); then
	"$cc" -O2 -o "$tmp/crelay" "$root/bench/crelay.c"
	args+=(-relay-cmd "$tmp/crelay {addr}")
fi
if cat=$(type -P cat); then
	args+=(-relay-cmd "$cat") # a stdio echo: the pipe-only ceiling for the client
fi

SRC=head "$root/bench/run.sh" "${args[@]}" "$@"
