#!/bin/sh
# The Python package as a user gets it: pip builds the wheel from the
# repository (setup.py runs make and puts the library inside the package),
# the wheel goes into a fresh venv, and the package is imported from another
# directory with no DIFFSTRIDE_LIB and no make install; it must load its own
# copy of the library and compute a test vector. Then pip uninstall must
# leave no file behind.
# Usage: tests/wheel_test.sh [PYTHON]   (default python3; from anywhere)
# Prints a line per check and "wheel: N passed, M failed"; exits 1 on failure.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
version=$("$root/tools/version.sh")

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
  echo "wheel: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] || exit 1
  exit 0
}
show() { sed 's/^/       /' "$1"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ds-wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
log=$tmp/log

# Offline, the interpreter's own setuptools (>= 61) and wheel build it;
# otherwise pip fetches them into an isolated build environment.
isolation=""
"$py" -c 'import setuptools, wheel, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 61)' \
  2>/dev/null && isolation=--no-build-isolation
if "$py" -m pip wheel -q --no-deps $isolation -w "$tmp/dist" "$root" >"$log" 2>&1; then
  ok "pip wheel $root ${isolation:-(isolated build)}"
else
  fail "pip wheel $root"
  show "$log"
  finish
fi
whl=$(ls "$tmp"/dist/diffstride-"$version"-py3-none-*.whl 2>/dev/null | head -n 1)
if [ -n "$whl" ]; then ok "wheel $(basename "$whl")"; else fail "no diffstride-$version-py3-none-*.whl"; ls "$tmp/dist"; finish; fi
if "$py" -c 'import sys, zipfile; sys.exit("diffstride/libdiffstride.so.0" not in zipfile.ZipFile(sys.argv[1]).namelist())' "$whl"; then
  ok "the wheel carries diffstride/libdiffstride.so.0"
else
  fail "the wheel has no diffstride/libdiffstride.so.0"
fi

# numpy comes from the interpreter's site-packages, so no index is needed.
venv=$tmp/venv
if "$py" -m venv --system-site-packages "$venv" >"$log" 2>&1 &&
   "$venv/bin/python" -m pip install -q --no-deps --no-index "$whl" >>"$log" 2>&1; then
  ok "installed into a fresh venv"
else
  fail "venv and pip install"
  show "$log"
  finish
fi

mkdir "$tmp/elsewhere"
if (cd "$tmp/elsewhere" && env -u DIFFSTRIDE_LIB -u PYTHONPATH "$venv/bin/python" - \
      "$root/tests/vectors/diffstride_00.txt" <<'PY') >"$log" 2>&1; then
import os
import sys

import numpy as np

import diffstride as ds

package = os.path.dirname(os.path.abspath(ds.__file__))
assert os.path.dirname(os.path.abspath(ds.library_path)) == package, (ds.library_path, package)
fields, arrays, key = {}, {}, None
for line in open(sys.argv[1]):
    words = line.split()
    if words and words[0] in ("x", "y", "dy", "dx", "dstrides"):
        key = words[0]
        arrays[key] = []
    elif words and key is None or (words and not words[0][0] in "-.0123456789"):
        fields[words[0]], key = words[1:], None
    elif words:
        arrays[key] += [float(v) for v in words]
n, c, h, w = (int(v) for v in fields["shape"])
oh, ow = (int(v) for v in fields["out"])
opts = {"smoothness": float(fields["smoothness"][0]), "cropping": fields["cropping"][0] == "1",
        "shared_stride": fields["shared"][0] == "1", "lower": float(fields["lower"][0]),
        "upper": float(fields["upper"][0])}
strides = [float(v) for v in fields["strides"]]
x = np.array(arrays["x"], np.float32).reshape(n, c, h, w)
y = ds.diffstride(x, strides, **opts)
want = np.array(arrays["y"]).reshape(n, c, oh, ow)
err = np.abs(y - want).max() / np.abs(want).max()
assert err < 1e-5, err
print(f"{ds.__file__}: version {ds.__version__}, {ds.library_path}, y relative error {err:.2e}")
PY
  ok "import from $tmp/elsewhere loads the package's own library and computes a test vector: $(tail -n 1 "$log")"
else
  fail "import and a test vector from another directory"
  show "$log"
fi

if "$venv/bin/python" -m pip uninstall -q -y diffstride >"$log" 2>&1; then ok "pip uninstall diffstride"; else
  fail "pip uninstall diffstride"; show "$log"; fi
left=$(find "$venv/lib" -iname '*diffstride*' 2>/dev/null)
if [ -z "$left" ]; then ok "nothing of diffstride left in the venv"; else fail "left behind: $left"; fi
finish
