"""Execution constraints, fees and strategy economics: pure, deterministic, auditable code.

``rules`` imports no I/O and nothing from ``scanner``; time is always an argument.

The daemon calls one function::

    from rules import evaluate, load_constraints, CexCexCandidate

    constraints = load_constraints(path.read_bytes(), str(path)).with_overrides(overrides)
    decision = evaluate(candidate, market, constraints, now_ns=time.monotonic_ns(), now_ms=wall_ms)
    journal.write(decision.to_json())

* candidates (:mod:`rules.candidates`): :class:`CexCexCandidate`, :class:`PerpSpotBasisCandidate`,
  :class:`FundingCarryCandidate`, :class:`CexDexCandidate`: frozen, validated at construction;
* the market (:mod:`rules.market`): a :class:`MarketView` giving :class:`BookView` (``feeds.book.OrderBook``),
  :class:`FundingView` (``feeds.updates.FundingUpdate``) and DEX quotes (:class:`ConstantProductPool`,
  :class:`QuotedSwap`), plus the two side tokens of the book walk;
* constraints (:mod:`rules.constraints`, file format in :mod:`rules.model`): :func:`load_constraints`,
  :meth:`Constraints.with_overrides`, :meth:`Constraints.overlay` for signed-endpoint values;
* the result (:mod:`rules.decision`): :class:`Decision` with its legs, numbers, rules used, reasons
  (:class:`Reason`, primary by :data:`PRECEDENCE`) and outcome.

See ``rules/README.md`` for the economics, the rule lookup and the reasons.
"""

from rules.candidates import (
    BasisDirection,
    Candidate,
    CexCexCandidate,
    CexDexCandidate,
    DexDirection,
    FundingCarryCandidate,
    PerpSpotBasisCandidate,
    Strategy,
)
from rules.constraints import Constraints, FeeUsed, ResolvedRule, RuleRef
from rules.decision import Decision, FundingLeg, LegResult
from rules.errors import CandidateError, ConstraintsError, OverrideError, RulesError
from rules.evaluate import evaluate
from rules.fees import FeeProfile, LiquidityRole
from rules.market import BookView, ConstantProductPool, DexQuote, FillView, FundingView, MarketView, QuotedSwap
from rules.model import ConstraintsFile, FeeTable, FeeTier, Rule, json_schema
from rules.overrides import parse_override, parse_overrides
from rules.reasons import PRECEDENCE, Outcome, Reason
from rules.template import template_document
from rules.validation import load_constraints, validate_document

__all__ = [
    "PRECEDENCE",
    "BasisDirection",
    "BookView",
    "Candidate",
    "CandidateError",
    "CexCexCandidate",
    "CexDexCandidate",
    "ConstantProductPool",
    "Constraints",
    "ConstraintsError",
    "ConstraintsFile",
    "Decision",
    "DexDirection",
    "DexQuote",
    "FeeProfile",
    "FeeTable",
    "FeeTier",
    "FeeUsed",
    "FillView",
    "FundingCarryCandidate",
    "FundingLeg",
    "FundingView",
    "LegResult",
    "LiquidityRole",
    "MarketView",
    "Outcome",
    "OverrideError",
    "PerpSpotBasisCandidate",
    "QuotedSwap",
    "Reason",
    "ResolvedRule",
    "Rule",
    "RuleRef",
    "RulesError",
    "Strategy",
    "evaluate",
    "json_schema",
    "load_constraints",
    "parse_override",
    "parse_overrides",
    "template_document",
    "validate_document",
]
