#!/bin/sh
# Makes sure the Python interpreter the tests run (PYTHON, by default the
# python3 first on PATH) can import the modules they need, and says which
# interpreter that is. Missing modules are installed for that interpreter
# with pip when running as root (Debian's own python3 has them from
# tools/deps.sh first); otherwise it stops with the exact command.
# Usage: tools/pydeps.sh PYTHON MODULE...   (each MODULE is imported by, and
# installed under, the same name)
py=$1
shift
if ! command -v "$py" >/dev/null 2>&1; then
  echo "pydeps: $py not found; install Python 3 (Debian: apt-get install python3)" >&2
  exit 1
fi
where=$("$py" -c 'import sys; print(sys.executable)')
missing=""
for m in "$@"; do
  "$py" -c "import $m" 2>/dev/null || missing="$missing $m"
done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && "$py" -m pip --version >/dev/null 2>&1; then
  echo "pydeps: installing$missing for $where with pip"
  PIP_ROOT_USER_ACTION=ignore "$py" -m pip install -q --disable-pip-version-check --retries 1 --timeout 30 $missing || {
    echo "pydeps: pip could not install$missing (no network?); run: $where -m pip install$missing" >&2
    exit 1; }
  missing=""
fi
if [ -n "$missing" ]; then
  echo "pydeps: $where cannot import$missing" >&2
  echo "pydeps: run: $where -m pip install$missing   (or make check PYTHON=/path/to/a/python3 that has them)" >&2
  exit 1
fi
echo "pydeps: tests run with $where ($*: found)"
