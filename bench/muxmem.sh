#!/bin/sh
# muxmem.sh: memory of procref in mux mode (issue 5).
#   (a) 8 windows -> 8 proxies -> one host -> `procref sample-server`:
#       host and proxy RSS.
#   (b) 4 windows on clangd through procref (1 clangd + 1 host + 4 proxies)
#       against 4 clangd started directly; totals of Pss and RSS, and their
#       ratios, on three fixtures:
#         fixture.c      testdata/editors-c (10 lines, <stdio.h>)
#         big.c          generated here (~360 lines, 4 libc headers)
#         inventory.cpp  testdata/muxmem-cpp (~410 lines of C++17 including
#                        30 standard headers: iostream, vector, map, regex,
#                        thread, variant, ...), the realistic one
# Every window sends initialize, initialized, didOpen of the fixture and a
# hover, and waits for the hover answer and for diagnostics (so the preamble
# and the AST are built) before anything is measured. Each fixture has one
# deliberate error.
#
# Usage: bench/muxmem.sh [OUTDIR]   (default /tmp/mm); needs Linux, go, clangd.
# Environment: SRC=head builds procref from the committed HEAD (git archive)
# instead of the working tree.
#
# The fixtures are copied to a temporary directory, and clangd runs with
# TMPDIR (its preamble files) and XDG_CACHE_HOME (its index, should it write
# one) inside it; the directory is removed at the end. Every process started
# carries MUXMEM_RUN=<this run>; muxmem stops its own by pid, and the script
# checks at the end that no clangd or procref process with this run's mark is
# left.
set -eu
cd "$(dirname "$0")/.."
out=${1:-/tmp/mm}
mkdir -p "$out"
work=$(mktemp -d)
run=muxmem-$$-$(date +%s)
# leftovers lists this run's clangd/procref/muxmem processes that still
# exist: those whose executable is one of these and whose environment has
# this run's mark (clangd renames its main thread "clangd.main", so match the
# executable, not the process name).
leftovers() {
	for d in /proc/[0-9]*; do
		case $(readlink "$d/exe" 2>/dev/null) in
		*/clangd | */clangd-[0-9]* | */procref | */procref-wait | */muxmem) ;;
		*) continue ;;
		esac
		if tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qx "MUXMEM_RUN=$run"; then
			echo "${d#/proc/}"
		fi
	done
}
cleanup() {
	for p in $(leftovers); do
		echo "# muxmem.sh: killing leftover pid $p" >&2
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

src=.
if [ "${SRC:-}" = head ]; then
	mkdir -p "$work/src"
	git archive HEAD | tar -x -C "$work/src"
	src=$work/src
fi
commit=$(git rev-parse --short HEAD)
if [ "$src" = . ] && [ -n "$(git status --porcelain -- cmd host proxy internal refcount go.mod go.sum 2>/dev/null)" ]; then
	commit="$commit + uncommitted changes"
fi
(cd "$src" && CGO_ENABLED=0 go build -o "$out/procref" ./cmd/procref)
go -C bench build -o "$out/muxmem" ./muxmem

mkdir -p "$work/run" "$work/state" "$work/tmp" "$work/cache" "$work/c" "$work/big" "$work/cpp"
chmod 700 "$work/run" "$work/state"
cp testdata/editors-c/fixture.c testdata/editors-c/compile_flags.txt "$work/c/"
cp testdata/muxmem-cpp/inventory.cpp testdata/muxmem-cpp/compile_flags.txt "$work/cpp/"
export PROCREF_RUNTIME_DIR="$work/run" PROCREF_STATE_DIR="$work/state"
export TMPDIR="$work/tmp" XDG_CACHE_HOME="$work/cache" MUXMEM_RUN="$run"

echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/{print $2" kB"}' /proc/meminfo) RAM"
echo "# $("$out/procref" version); $(clangd --version 2>&1 | head -1); procref built from $commit"
echo "# clangd processes of others before the run: $(pgrep clangd | wc -l)"

echo "## (a) 8 windows, procref -- procref sample-server"
"$out/muxmem" -n 8 -diag -file "$work/c/fixture.c" -- "$out/procref" -- "$out/procref" sample-server

# A larger C fixture: ~360 lines, several libc headers, one deliberate error.
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
echo "# big.c: $(wc -l <"$work/big/big.c") lines; inventory.cpp: $(wc -l <"$work/cpp/inventory.cpp") lines"

# The hover in inventory.cpp is on `reprice` in `store.reprice(...)` (line
# 396, 1-based), so clangd must resolve a member of a class in the AST.
: >"$out/summary.txt"
for spec in "c/fixture.c c 0:0" "big/big.c c 0:0" "cpp/inventory.cpp cpp 395:7"; do
	set -- $spec
	f=$work/$1
	name=$(basename "$f")
	for mode in procref direct; do
		if [ $mode = procref ]; then
			echo "## (b) 4 windows, procref -- clangd, $name"
			set -- "$out/procref" -- clangd
		else
			echo "## (b) 4 windows, clangd directly, $name"
			set -- clangd
		fi
		lang=$(echo "$spec" | cut -d' ' -f2)
		hover=$(echo "$spec" | cut -d' ' -f3)
		"$out/muxmem" -n 4 -diag -lang "$lang" -hover "$hover" -file "$f" -- "$@" 2>&1 | tee "$out/$name.$mode.txt"
		# muxmem's exit status is lost in the pipe: insist on its TOTAL line.
		t=$(grep '^sum TOTAL' "$out/$name.$mode.txt") || { echo "muxmem failed for $name $mode" >&2; exit 1; }
		echo "$name $mode $t" >>"$out/summary.txt"
		echo "# diagnostics per window (count x messages):"
		sed -n 's/.*diag_messages=\(.*\) hover_bytes.*/\1/p' "$out/$name.$mode.txt" | sort | uniq -c
	done
done

echo "## index or cache files written by clangd (in the temp dir, removed at exit)"
n=$(cd "$work" && find cache c big cpp \( -path "*/.cache/*" -o -path "cache/*" \) -type f | wc -l); echo "# $n file(s)"; (cd "$work" && find cache c big cpp \( -path "*/.cache/*" -o -path "cache/*" \) -type f | head -5)
echo "## summary (KiB): 4 windows through procref (1 clangd + host + 4 proxies) vs 4 clangd"
echo "| fixture | procref Pss | 4 clangd Pss | ratio Pss | procref RSS | 4 clangd RSS | ratio RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|"
awk '{
	for (i = 1; i <= NF; i++) {
		if ($i ~ /^rss_kib=/) { sub(/^rss_kib=/, "", $i); rss[$1, $2] = $i }
		if ($i ~ /^pss_kib=/) { sub(/^pss_kib=/, "", $i); pss[$1, $2] = $i }
	}
	if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
}
END {
	for (k = 1; k <= n; k++) {
		f = order[k]
		printf "| %s | %d | %d | %.1f%% | %d | %d | %.1f%% |\n", f,
			pss[f, "procref"], pss[f, "direct"], 100 * pss[f, "procref"] / pss[f, "direct"],
			rss[f, "procref"], rss[f, "direct"], 100 * rss[f, "procref"] / rss[f, "direct"]
	}
}' "$out/summary.txt"

left=$(leftovers)
if [ -n "$left" ]; then
	echo "# FAIL: processes of this run still alive: $left" >&2
	exit 1
fi
echo "# no clangd/procref process of this run left; clangd processes of others after the run: $(pgrep clangd | wc -l)"
