#!/bin/sh
# Prints libdiffstride's version, MAJOR.MINOR.PATCH, from the one place it is
# written: the DS_VERSION_* macros of include/diffstride.h (the Makefile,
# setup.py and tests/install_test.sh read it from there).
sed -n 's/^#define DS_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9][0-9]*\)$/\2/p' \
  "$(dirname "$0")/../include/diffstride.h" | paste -sd. -
