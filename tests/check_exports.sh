#!/bin/sh
# Checks the dynamic symbol table of the shared library:
#   - every defined function/object symbol it exports starts with ds_
#     (_init/_fini and the like are ignored, should they appear);
#   - its SONAME is libdiffstride.so.0;
#   - every function the public header declares with DS_API is exported.
# Usage: tests/check_exports.sh LIB.so [HEADER]   (HEADER: include/diffstride.h)
# Prints a line per check and "exports: N passed, M failed"; exits 1 on failure.
set -eu
LC_ALL=C
export LC_ALL

lib=${1:?usage: $0 LIB.so [HEADER]}
header=${2:-$(dirname "$0")/../include/diffstride.h}
want_soname=libdiffstride.so.0

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
  echo "exports: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] || exit 1
  exit 0
}

if [ ! -f "$lib" ]; then
  fail "library $lib not found (run make)"
  finish
fi
if [ ! -f "$header" ]; then
  fail "header $header not found"
  finish
fi
for tool in nm readelf; do
  command -v "$tool" >/dev/null 2>&1 || { fail "$tool not found (binutils)"; finish; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# Defined dynamic symbols: "VALUE TYPE NAME" (versioned names lose "@...").
if ! nm -D --defined-only "$lib" >"$tmp/nm" 2>"$tmp/nm.err"; then
  fail "nm -D --defined-only $lib: $(cat "$tmp/nm.err")"
  finish
fi
# Functions and data: T/t text, D/d data, B/b bss, R/r read-only, V/v W/w weak,
# i indirect, u unique, G/g S/s small data. A (absolute, e.g. version nodes) is left out.
awk 'NF >= 3 && $2 ~ /^[TtDdBbRrVvWwiuGgSs]$/ { sub(/@.*/, "", $3); print $3 }' "$tmp/nm" |
  sort -u >"$tmp/exported"
# Symbols the toolchain may add; they are not part of the API.
grep -Ev '^(_init|_fini|_edata|_end|__bss_start|_DYNAMIC|_GLOBAL_OFFSET_TABLE_|__dso_handle|_IO_stdin_used)$' \
  "$tmp/exported" >"$tmp/api" || true

n_exported=$(wc -l <"$tmp/api" | tr -d ' ')
if [ "$n_exported" -gt 0 ]; then
  ok "$lib exports $n_exported symbols"
else
  fail "$lib exports no symbols"
fi

grep -v '^ds_' "$tmp/api" >"$tmp/foreign" || true
if [ -s "$tmp/foreign" ]; then
  fail "exported symbols outside the ds_ prefix:"
  sed 's/^/       /' "$tmp/foreign"
else
  ok "every exported symbol starts with ds_"
fi

# Internal helpers (ds__*) must stay hidden.
grep '^ds__' "$tmp/api" >"$tmp/internal" || true
if [ -s "$tmp/internal" ]; then
  fail "internal ds__ symbols are exported:"
  sed 's/^/       /' "$tmp/internal"
else
  ok "no internal ds__ symbol is exported"
fi

# SONAME.
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" = "$want_soname" ]; then
  ok "SONAME is $soname"
else
  fail "SONAME is '${soname}', want $want_soname"
fi

# Every DS_API function of the header is exported. Declarations may span lines,
# so the header is joined into one line, its comments and the DS_API #define
# lines dropped, then split into statements at ';', '{' and '}'.
# shellcheck disable=SC2020 # each of ; { } becomes a newline
grep -v '^[[:space:]]*#' "$header" | tr '\n' ' ' | sed -E 's:/\*([^*]|\*+[^*/])*\*+/: :g' |
  tr ';{}' '\n\n\n' | grep 'DS_API' |
  grep -oE 'ds_[a-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:]]*($//' | sort -u >"$tmp/declared"
n_declared=$(wc -l <"$tmp/declared" | tr -d ' ')
if [ "$n_declared" -gt 0 ]; then
  ok "$header declares $n_declared DS_API functions"
else
  fail "no DS_API function found in $header"
fi
comm -23 "$tmp/declared" "$tmp/exported" >"$tmp/missing"
if [ -s "$tmp/missing" ]; then
  fail "DS_API functions of $header not exported:"
  sed 's/^/       /' "$tmp/missing"
else
  ok "every DS_API function of $header is exported"
fi

# Exported ds_ functions the header does not declare (a leak of an internal name).
# (ds__ names are reported above.)
grep '^ds_' "$tmp/api" | grep -v '^ds__' | comm -23 - "$tmp/declared" >"$tmp/undeclared" || true
if [ -s "$tmp/undeclared" ]; then
  fail "exported symbols the header does not declare:"
  sed 's/^/       /' "$tmp/undeclared"
else
  ok "every exported symbol is declared in $header"
fi

finish
