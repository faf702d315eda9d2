"""Build of the Python package with libdiffstride inside it (pip install .).

The library is built by the project's Makefile, as `make` builds it (the
CUDA path too when nvcc is found; DIFFSTRIDE_MAKE_FLAGS="CUDA=0" leaves it
out), and its shared library is copied into the package as
libdiffstride.so.<SOVERSION>, where `import diffstride` looks first
(diffstride/_lib.py). The version is the one of include/diffstride.h.
"""
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 carries bdist_wheel; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    from wheel.bdist_wheel import bdist_wheel

ROOT = Path(__file__).resolve().parent


def version():
    """MAJOR.MINOR.PATCH from the DS_VERSION_* macros of the header."""
    header = (ROOT / "include" / "diffstride.h").read_text()
    parts = [re.search(rf"^#define DS_VERSION_{p} (\d+)$", header, re.M).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


class BuildWithLibrary(build_py):
    """build_py, then `make all` and the shared library into the package."""

    def run(self):
        super().run()
        flags = shlex.split(os.environ.get("DIFFSTRIDE_MAKE_FLAGS", ""))
        subprocess.run(["make", "-C", str(ROOT), "all"] + flags, check=True)
        built = ROOT / "lib" / f"libdiffstride.so.{version()}"
        target = Path(self.build_lib) / "diffstride" / f"libdiffstride.so.{version().split('.')[0]}"
        shutil.copyfile(built, target)
        os.chmod(target, 0o755)


class WithSharedLibrary(Distribution):
    """The package carries a shared library: platform-specific files."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """A wheel for this platform that any Python 3 can use (the library is
    loaded with ctypes: no Python ABI)."""

    def get_tag(self):
        return "py3", "none", super().get_tag()[2]


setup(version=version(), distclass=WithSharedLibrary,
      cmdclass={"build_py": BuildWithLibrary, "bdist_wheel": PlatformWheel})
