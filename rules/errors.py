"""Exceptions raised by ``rules``.

::

    RulesError                 base; ``exit_code`` is what the CLI exits with
    ├── ConstraintsError       the constraints file is invalid: every (JSON path, reason) listed → 2
    └── OverrideError          a bad ``--strategy-leverage-override`` (unknown strategy, bad number) → 2
"""

from __future__ import annotations


class RulesError(Exception):
    exit_code = 1
