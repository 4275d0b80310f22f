#!/bin/sh
# muxmem.sh: memory of procref in mux mode (issue 5).
#   (a) 8 windows -> 8 proxies -> one host -> `procref sample-server`:
#       host and proxy RSS.
#   (b) 4 windows on clangd through procref (1 clangd + 1 host + 4 proxies)
#       against 4 clangd started directly; totals of Pss and RSS.
# Every window sends initialize, initialized, didOpen of the fixture and a
# hover, and (clangd) waits for diagnostics before measuring.
# Usage: bench/muxmem.sh [OUTDIR]   (default /tmp/mm); needs Linux, go, clangd.
set -eu
cd "$(dirname "$0")/.."
out=${1:-/tmp/mm}
mkdir -p "$out"
CGO_ENABLED=0 go build -o "$out/procref" ./cmd/procref
go build -o "$out/muxmem" ./bench/muxmem
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/run" "$work/state" "$work/c"
chmod 700 "$work/run" "$work/state"
cp testdata/editors-c/fixture.c testdata/editors-c/compile_flags.txt "$work/c/"
export PROCREF_RUNTIME_DIR="$work/run" PROCREF_STATE_DIR="$work/state"

echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/{print $2" kB"}' /proc/meminfo) RAM"
echo "# $("$out/procref" version); $(clangd --version 2>&1 | head -1)"

echo "## (a) 8 windows, procref -- procref sample-server"
"$out/muxmem" -n 8 -diag -file "$work/c/fixture.c" -- "$out/procref" -- "$out/procref" sample-server

# A larger fixture: ~300 lines, several libc headers, one deliberate error.
mkdir -p "$work/big"
cp testdata/editors-c/compile_flags.txt "$work/big/"
{
	printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\n\n'
	i=0
	while [ $i -lt 50 ]; do
		printf 'struct rec%d { int id; double v; char name[32]; };\n' $i
		printf 'static double f%d(const struct rec%d *r, int n) {\n\tdouble s = 0;\n' $i $i
		printf '\tfor (int k = 0; k < n; k++) s += sqrt(r[k].v) + (double)strlen(r[k].name);\n'
		printf '\treturn s;\n}\n\n'
		i=$((i + 1))
	done
	printf 'int main(void) {\n\tstruct rec0 r = {1, 2.0, "x"};\n\tprintf("%%f\\n", f0(&r, 1));\n\treturn undeclared_name;\n}\n'
} >"$work/big/big.c"
echo "# big.c: $(wc -l <"$work/big/big.c") lines"

for f in "$work/c/fixture.c" "$work/big/big.c"; do
	echo "## (b1) 4 windows, procref -- clangd, $(basename "$f")"
	"$out/muxmem" -n 4 -diag -file "$f" -- "$out/procref" -- clangd
	echo "## (b2) 4 windows, clangd directly, $(basename "$f")"
	"$out/muxmem" -n 4 -diag -file "$f" -- clangd
done
