#!/bin/sh
# hover.sh: hover round trip of real language servers through procref
# against the same server started directly (issue 15), K=1 window, N
# hovers after 200 unmeasured ones, three interleaved blocks, one run:
#   clangd  (testdata/muxmem-cpp/inventory.cpp, hover at 395:7):
#           direct; procref mux mode (the host reads the editor's pipes:
#           descriptor handoff); procref mux mode relayed by the proxy
#           (PROCREF_HANDOFF=0) with the poll(2) relay and with the portable
#           relay (PROCREF_RELAY=copy)
#   gopls   (a small module generated here, hover on a call):
#           direct; procref mux mode (handoff); procref tcp mode
#           (`gopls serve -listen=unix;{socket}`) with the poll(2) relay
#           and with the portable relay
#   floor:  the same server behind a minimal relay process (procbench relay
#           -exec -poll: one poll(2) loop, no attach, no multiplexer), what
#           one extra process hop costs on this machine
# Usage: bench/hover.sh [N]   (default 200; Linux; go, clangd, gopls)
set -eu
cd "$(dirname "$0")/.."
n=${1:-200}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/procref-hover.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/procref" ./cmd/procref
go -C bench build -o "$tmp/muxmem" ./muxmem
go -C bench build -o "$tmp/procbench" ./procbench
gopls=$(command -v gopls || echo "$(go env GOPATH)/bin/gopls")
mkdir -m 700 "$tmp/run" "$tmp/state" "$tmp/go"
export PROCREF_RUNTIME_DIR="$tmp/run" PROCREF_STATE_DIR="$tmp/state"
cp testdata/muxmem-cpp/inventory.cpp "$tmp/inventory.cpp"
printf 'module example.com/hover\n\ngo 1.22\n' > "$tmp/go/go.mod"
cat > "$tmp/go/main.go" <<'GO'
package main

import "fmt"

// Greeting says hello to name.
func Greeting(name string) string { return fmt.Sprintf("hello, %s", name) }

func main() { fmt.Println(Greeting("world")) }
GO
echo "## Hover run of $(date -u '+%Y-%m-%d %H:%M:%S UTC') at commit $(git rev-parse --short HEAD)"
echo '```'
nproc; uname -srm; clangd --version | head -1; "$gopls" version | head -1; uptime
echo '```'
echo '```'
run() { # label, env..., -- cmd...
	label=$1; shift
	printf '%-34s ' "$label"
	env "$@" 2>/dev/null | grep '^rtt' || echo "failed"
}
for block in 1 2 3; do
	for mode in direct floor handoff poll copy; do
		case $mode in
		floor) run "b$block clangd floor (bare relay)" "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang cpp -hover 395:7 -file "$tmp/inventory.cpp" -- "$tmp/procbench" relay -exec -poll clangd ;;
		direct) run "b$block clangd direct" "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang cpp -hover 395:7 -file "$tmp/inventory.cpp" -- clangd ;;
		handoff) run "b$block clangd procref handoff" "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang cpp -hover 395:7 -file "$tmp/inventory.cpp" -- "$tmp/procref" -- clangd ;;
		poll) run "b$block clangd procref relay poll" PROCREF_HANDOFF=0 "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang cpp -hover 395:7 -file "$tmp/inventory.cpp" -- "$tmp/procref" -- clangd ;;
		copy) run "b$block clangd procref relay copy" PROCREF_HANDOFF=0 PROCREF_RELAY=copy "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang cpp -hover 395:7 -file "$tmp/inventory.cpp" -- "$tmp/procref" -- clangd ;;
		esac
	done
	for mode in direct floor handoff poll copy; do
		case $mode in
		floor) run "b$block gopls floor (bare relay)" "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang go -hover 7:27 -file "$tmp/go/main.go" -- "$tmp/procbench" relay -exec -poll "$gopls" ;;
		direct) run "b$block gopls direct" "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang go -hover 7:27 -file "$tmp/go/main.go" -- "$gopls" ;;
		handoff) run "b$block gopls procref mux handoff" "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang go -hover 7:27 -file "$tmp/go/main.go" -- "$tmp/procref" -- "$gopls" ;;
		poll) run "b$block gopls procref tcp poll" "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang go -hover 7:27 -file "$tmp/go/main.go" -- "$tmp/procref" -- "$gopls" serve "-listen=unix;{socket}" ;;
		copy) run "b$block gopls procref tcp copy" PROCREF_RELAY=copy "$tmp/muxmem" -n 1 -rtt "$n" -settle 0s -lang go -hover 7:27 -file "$tmp/go/main.go" -- "$tmp/procref" -- "$gopls" serve "-listen=unix;{socket}" ;;
		esac
	done
done
echo '```'
