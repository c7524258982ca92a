"""The one compiled module: OrderBook.apply's per-level loop (feeds/_levels.c; its reference is feeds/_levels_py.py).

Everything else about the package is in pyproject.toml. The build needs a C compiler and the Python headers
(``gcc`` and ``python3-dev`` on Debian); without them, install with ``ARBSCAN_PURE_PYTHON=1`` and the book
uses the Python loop (slower on large diffs; the daemon logs which one runs).
"""

import os

from setuptools import Extension, setup

pure = os.environ.get("ARBSCAN_PURE_PYTHON") == "1"
setup(ext_modules=[] if pure else [Extension("feeds._levels", ["feeds/_levels.c"], extra_compile_args=["-O2"])])
