"""Exceptions raised by ``rules``.

::

    RulesError                 base; ``exit_code`` is what the CLI exits with
    ├── ConstraintsError       the constraints file is invalid: every (JSON path, reason) listed → 2
    ├── OverrideError          a bad ``--strategy-leverage-override`` (unknown strategy, bad number) → 2
    └── CandidateError         a candidate is malformed (wrong instrument kinds, size ≤ 0, ...) → 2

Market state is never an exception: a missing book, stale funding or a crossed book is a *reason* on the
decision (see :mod:`rules.reasons`). Exceptions are for bad input files, bad flags and bad candidates,
which are all found before the first evaluation.
"""

from __future__ import annotations


class RulesError(Exception):
    exit_code = 1


class ConstraintsError(RulesError):
    """An invalid constraints document. ``problems`` lists every (JSON path, reason), not only the first."""

    exit_code = 2

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {reason}" for path, reason in problems)
        count = len(problems)
        super().__init__(f"{source}: invalid execution constraints ({count} error{'s' * (count != 1)}):\n{lines}")


class OverrideError(RulesError):
    """A malformed ``STRATEGY=MULTIPLIER`` override. ``text`` is what the user typed."""

    exit_code = 2

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"--strategy-leverage-override {text!r}: {reason}")


class CandidateError(RulesError):
    """A candidate that can never be evaluated (built from the daemon's config, so this is bad input)."""

    exit_code = 2

    def __init__(self, candidate_id: str, reason: str) -> None:
        self.candidate_id = candidate_id
        self.reason = reason
        super().__init__(f"candidate {candidate_id!r}: {reason}")
