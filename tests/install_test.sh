#!/bin/sh
# Installs the library into a temporary prefix with `make install`, then
# builds and runs a separate C program through pkg-config, linked first
# against the shared library and then statically against libdiffstride.a,
# and finally checks that `make uninstall` removes every installed file.
# Usage: tests/install_test.sh   (from anywhere; runs make in the repository)
# Prints a line per check and "install: N passed, M failed"; exits 1 on failure.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
make=${MAKE:-make}
cc=${CC:-cc}
pkgconfig=${PKG_CONFIG:-pkg-config}
version=$("$root/tools/version.sh")

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
  echo "install: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] || exit 1
  exit 0
}
# Shows a command's output, indented, after a failure.
show() { sed 's/^/       /' "$1"; }

for tool in "$make" "$cc" "$pkgconfig" readelf; do
  command -v "$tool" >/dev/null 2>&1 || { fail "$tool not found"; finish; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ds-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
prefix=$tmp/prefix
log=$tmp/log

# ------------------------------------------------------------------ install
# DESTDIR is emptied so that a DESTDIR in the environment cannot redirect it.
if "$make" -s --no-print-directory -C "$root" install PREFIX="$prefix" DESTDIR= >"$log" 2>&1; then
  ok "make install PREFIX=$prefix"
else
  fail "make install PREFIX=$prefix"
  show "$log"
  finish
fi
for f in include/diffstride.h lib/libdiffstride.a lib/libdiffstride.so lib/libdiffstride.so.0 \
  "lib/libdiffstride.so.$version" lib/pkgconfig/diffstride.pc; do
  if [ -e "$prefix/$f" ]; then ok "installed $f"; else fail "not installed: $f"; fi
done

PKG_CONFIG_PATH=$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR 2>/dev/null || true

got=$("$pkgconfig" --modversion diffstride 2>&1) || true
if [ "$got" = "$version" ]; then ok "pkg-config --modversion diffstride: $got"; else
  fail "pkg-config --modversion diffstride: '$got', want $version"; fi
# The .pc must describe where the files were installed, not the build's default prefix.
for var in prefix libdir includedir; do
  case $var in prefix) want=$prefix ;; libdir) want=$prefix/lib ;; includedir) want=$prefix/include ;; esac
  got=$("$pkgconfig" --variable=$var diffstride 2>&1) || true
  if [ "$got" = "$want" ]; then ok "diffstride.pc $var=$got"; else
    fail "diffstride.pc $var='$got', want $want"; fi
done

# ------------------------------------------------------------------ program
cat >"$tmp/use_diffstride.c" <<'EOF'
#include <diffstride.h>
#include <math.h>
#include <stdio.h>

int main(void) {
  if (ds_version() != DS_VERSION_MAJOR * 10000u + DS_VERSION_MINOR * 100u + DS_VERSION_PATCH) {
    fprintf(stderr, "ds_version %u does not match the header\n", ds_version());
    return 1;
  }
  ds_diffstride_desc desc;
  ds_diffstride_desc_init(&desc);
  const float strides[2] = {2.0f, 4.0f};
  int oh = 0, ow = 0;
  ds_status st = ds_diffstride_output_size(&desc, 64, 64, strides, &oh, &ow);
  if (st != DS_OK) {
    fprintf(stderr, "output_size: %s: %s\n", ds_status_string(st), ds_last_error());
    return 1;
  }
  printf("%d %d\n", oh, ow);

  /* Forward on a tiny batch (1 x 2 x 8 x 8). */
  enum { N = 1, C = 2, H = 8, W = 8 };
  const float s2[2] = {2.0f, 2.0f};
  float x[N * C * H * W], y[N * C * H * W];
  for (int i = 0; i < N * C * H * W; i++) x[i] = (float)((i * 37) % 11) - 5.0f;
  st = ds_diffstride_output_size(&desc, H, W, s2, &oh, &ow);
  if (st != DS_OK || oh < 1 || ow < 1 || oh > H || ow > W) {
    fprintf(stderr, "output_size 8x8: %s: %s\n", ds_status_string(st), ds_last_error());
    return 1;
  }
  ds_context *ctx = NULL;
  st = ds_context_create(DS_DEVICE_CPU, &ctx);
  if (st != DS_OK) {
    fprintf(stderr, "context_create: %s: %s\n", ds_status_string(st), ds_last_error());
    return 1;
  }
  st = ds_diffstride_forward(ctx, &desc, N, C, H, W, s2, x, oh, ow, y);
  if (st != DS_OK) {
    fprintf(stderr, "forward: %s: %s\n", ds_status_string(st), ds_context_last_error(ctx));
    ds_context_destroy(ctx);
    return 1;
  }
  ds_context_destroy(ctx);
  double norm = 0.0;
  for (int i = 0; i < N * C * oh * ow; i++) {
    if (!isfinite(y[i])) {
      fprintf(stderr, "forward: y[%d] = %g\n", i, (double)y[i]);
      return 1;
    }
    norm += (double)y[i] * y[i];
  }
  if (!(norm > 0.0)) {
    fprintf(stderr, "forward: y is all zero\n");
    return 1;
  }
  printf("forward %dx%d ok\n", oh, ow);
  return 0;
}
EOF
want_out=$(printf '40 24\nforward ')

# Runs the program built at $1 (with the environment in the remaining
# arguments) and checks its output.
run_prog() {
  bin=$1
  what=$2
  shift 2
  if env "$@" "$bin" >"$log" 2>&1; then
    out=$(cat "$log")
    case $out in
      "$want_out"*) ok "$what prints '$(head -n 1 "$log")' and runs a forward" ;;
      *) fail "$what output, want '40 24' then 'forward ...':"; show "$log" ;;
    esac
  else
    fail "$what exits with an error:"
    show "$log"
  fi
}

cflags=$("$pkgconfig" --cflags diffstride 2>"$log") || { fail "pkg-config --cflags diffstride"; show "$log"; }
libs=$("$pkgconfig" --libs diffstride 2>"$log") || { fail "pkg-config --libs diffstride"; show "$log"; }
static_libs=$("$pkgconfig" --static --libs diffstride 2>"$log") ||
  { fail "pkg-config --static --libs diffstride"; show "$log"; }

# Shared: found through pkg-config, run with LD_LIBRARY_PATH on the installed copy.
# shellcheck disable=SC2086 # word splitting of the pkg-config flags is intended
if "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$tmp/use_diffstride.c" -o "$tmp/use_shared" \
  $libs >"$log" 2>&1; then
  ok "cc \$(pkg-config --cflags --libs diffstride): $cflags $libs"
  if readelf -d "$tmp/use_shared" | grep -q 'NEEDED.*\[libdiffstride\.so\.0\]'; then
    ok "the shared build needs libdiffstride.so.0"
  else
    fail "the shared build does not record NEEDED libdiffstride.so.0:"
    readelf -d "$tmp/use_shared" | grep NEEDED | sed 's/^/       /'
  fi
  run_prog "$tmp/use_shared" "shared build" LD_LIBRARY_PATH="$prefix/lib"
else
  fail "cc \$(pkg-config --cflags --libs diffstride): $cflags $libs"
  show "$log"
fi

# Static: -ldiffstride resolved to libdiffstride.a only, then the private libs.
static_link=
for flag in $static_libs; do
  case $flag in
    -ldiffstride) static_link="$static_link -Wl,-Bstatic -ldiffstride -Wl,-Bdynamic" ;;
    *) static_link="$static_link $flag" ;;
  esac
done
# shellcheck disable=SC2086
if "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$tmp/use_diffstride.c" -o "$tmp/use_static" \
  $static_link >"$log" 2>&1; then
  ok "cc \$(pkg-config --static --libs diffstride), libdiffstride.a only:$static_link"
  if readelf -d "$tmp/use_static" | grep -q 'NEEDED.*libdiffstride'; then
    fail "the static build still needs libdiffstride.so"
  else
    ok "the static build does not need libdiffstride.so"
  fi
  # No LD_LIBRARY_PATH: the library is inside the program.
  run_prog "$tmp/use_static" "static build" LD_LIBRARY_PATH=
else
  fail "cc \$(pkg-config --static --libs diffstride), libdiffstride.a only:$static_link"
  show "$log"
fi

# ---------------------------------------------------------------- uninstall
if "$make" -s --no-print-directory -C "$root" uninstall PREFIX="$prefix" DESTDIR= >"$log" 2>&1; then
  ok "make uninstall PREFIX=$prefix"
else
  fail "make uninstall PREFIX=$prefix"
  show "$log"
fi
find "$prefix" ! -type d >"$log" 2>&1 || true
if [ -s "$log" ]; then
  fail "make uninstall left files behind:"
  show "$log"
else
  ok "make uninstall removed every installed file"
fi

finish
