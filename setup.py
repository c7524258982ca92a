"""The one compiled module: a book side's levels, window and walk (feeds/_levels.c; reference: feeds/_levels_py.py).

Everything else about the package is in pyproject.toml. The build needs a C compiler and the Python headers
(``gcc`` and ``python3-dev`` on Debian); without them, install with ``ARBSCAN_PURE_PYTHON=1`` and the book
uses the Python reference (slower on large diffs; the daemon logs which one runs).
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError

HINT = (
    "arbscan: compiling feeds/_levels.c failed ({}). Install a C compiler and the Python headers "
    "(Debian: apt-get install gcc python3-dev), or install without it: ARBSCAN_PURE_PYTHON=1 pip install ..."
)


class BuildWithHint(build_ext):
    """A failed compile says what to install, or how to do without."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, OSError) as exc:  # no compiler, no headers, a compile error
            raise SystemExit(HINT.format(exc)) from None


pure = os.environ.get("ARBSCAN_PURE_PYTHON") == "1"
FLAGS = ["-O2", "-ffp-contract=off"]
setup(
    # -ffp-contract=off: no fused multiply-add, so the walk rounds as the reference does (to the bit)
    ext_modules=[] if pure else [Extension("feeds._levels", ["feeds/_levels.c"], extra_compile_args=FLAGS)],
    cmdclass={"build_ext": BuildWithHint},
)
