#!/bin/sh
# mcp.sh: an MCP server through procref against the same server directly
# (issue 16), in one run, with the official server-everything from
# testdata/mcp-node (npm ci --prefix testdata/mcp-node):
#   (a) tools/call round trip of its echo tool: p50/p90/p99 of 500 sequential
#       calls after 200 unmeasured ones, for the server started directly,
#       behind a minimal Go relay process (`procbench relay -exec`: the
#       floor for any process in between), and through procref;
#       interleaved blocks (BLOCKS=N, default 3).
#   (b) memory: 8 sessions through procref (1 server + 1 host + 8 proxies)
#       against 8 servers started directly; Pss totals per role.
# Usage: bench/mcp.sh   (Linux; go, node). Every process carries the run's
# MUXMEM_TAG and muxmem stops its own by pid.
set -eu
cd "$(dirname "$0")/.."
ev=$PWD/testdata/mcp-node/node_modules/@modelcontextprotocol/server-everything/dist/index.js
[ -f "$ev" ] || { echo "mcp.sh: $ev missing: run npm ci --prefix testdata/mcp-node" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/procref-mcpbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/procref" ./cmd/procref
go -C bench build -o "$tmp/muxmem" ./muxmem
go -C bench build -o "$tmp/procbench" ./procbench
mkdir -m 700 "$tmp/run" "$tmp/state"
export PROCREF_RUNTIME_DIR="$tmp/run" PROCREF_STATE_DIR="$tmp/state"
echo "## MCP run of $(date -u '+%Y-%m-%d %H:%M:%S UTC') at commit $(git rev-parse --short HEAD)"
echo '```'
nproc; uname -srm; node --version; uptime
echo '```'
echo '### tools/call round trip (echo), µs'
echo '```'
for block in $(seq "${BLOCKS:-3}"); do
	for mode in direct go-relay procref; do
		case $mode in
		direct) cmd="node $ev stdio" ;;
		go-relay) cmd="$tmp/procbench relay -exec node $ev stdio" ;;
		procref) cmd="$tmp/procref -- node $ev stdio" ;;
		esac
		printf 'block %s %-9s ' "$block" "$mode"
		(cd "$tmp" && "$tmp/muxmem" -mcp -n 1 -rtt 500 -settle 0s -- $cmd 2>/dev/null | grep '^rtt')
	done
done
echo '```'
echo '### 8 sessions: memory (KiB)'
echo '```'
for mode in direct procref; do
	case $mode in
	direct) cmd="node $ev stdio" ;;
	procref) cmd="$tmp/procref -- node $ev stdio" ;;
	esac
	echo "$mode:"
	(cd "$tmp" && "$tmp/muxmem" -mcp -n 8 -settle 2s -- $cmd 2>/dev/null | grep '^sum')
done
echo '```'
