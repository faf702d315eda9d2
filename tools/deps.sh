#!/bin/sh
# Makes sure the Debian packages a target needs are installed: installs them
# with apt-get when running as root, otherwise stops with the exact command.
# Usage: tools/deps.sh PACKAGE...   (each PACKAGE is a Debian package name)
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: no dpkg here; make sure these (Debian names) are installed: $*" >&2
  exit 0
fi
missing=""
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; } || {
    echo "deps: apt-get could not install$missing" >&2; exit 1; }
  exit 0
fi
echo "deps: missing Debian packages:$missing" >&2
echo "deps: run: sudo apt-get install$missing" >&2
exit 1
