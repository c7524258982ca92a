"""Why a candidate does not qualify: a stable enum, every reason that applies, one primary.

The values are stable strings (journal, metrics labels, alerts): never rename one, only add.
A decision lists *every* reason true of its numbers (the economics are computed even when a limit
already rejects), and names one primary: the first in :data:`PRECEDENCE`.

Precedence, and why:

1. ``constraints_missing``      no rule value or fee table for a leg: nothing else can be trusted.
2. ``book_not_ready``           a leg has no book/quote, an empty side, or a crossed book.
3. ``stale_book``               a leg's book is older than its ``max_book_age_ms``.
4. ``leg_skew``                 the legs' books were received too far apart (``max_leg_skew_ms``).
5. ``funding_unknown``          a held perp leg has no usable funding (rate, interval, next time).
6. ``insufficient_depth``       a leg's side ran out before the size was filled.
7. ``leverage_limit_exceeded``  ``leverage_used > max_leverage`` on some leg.
8. ``borrow_limit_exceeded``    the borrow needed is above ``max_borrow_usd``.
9. ``no_gross_edge``            ``gross + funding <= 0``: nothing to pay costs with.
10. ``fee_dominated``           ``gross + funding > 0`` but ``gross − fees + funding <= 0``.
11. ``borrow_cost_dominated``   ``gross − fees + funding > 0`` but ``net <= 0``.
12. ``below_min_edge``          ``net < min_net_edge_bps``.

Data quality comes first (a number computed from a bad book explains nothing), then what the account
cannot do (capacity and limits), then the economics in the order costs are taken from the edge: the
primary economic reason is the first cost that wipes the edge out. ``below_min_edge`` is listed
whenever net is under the threshold, including when an earlier economic reason already applies.

One code is not an evaluation's: ``not_watched`` (last in precedence, never in a decision ``rules`` makes)
is the primary reason of the ``disqualified`` event with which the daemon closes a qualified episode it
stopped watching (the candidate removed or redefined by a reload, or the daemon down for longer than it
resumes across). :data:`EVALUATED` is every other reason: what rejection metrics count.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Reason(StrEnum):
    CONSTRAINTS_MISSING = "constraints_missing"
    BOOK_NOT_READY = "book_not_ready"
    STALE_BOOK = "stale_book"
    LEG_SKEW = "leg_skew"
    FUNDING_UNKNOWN = "funding_unknown"
    INSUFFICIENT_DEPTH = "insufficient_depth"
    LEVERAGE_LIMIT_EXCEEDED = "leverage_limit_exceeded"
    BORROW_LIMIT_EXCEEDED = "borrow_limit_exceeded"
    NO_GROSS_EDGE = "no_gross_edge"
    FEE_DOMINATED = "fee_dominated"
    BORROW_COST_DOMINATED = "borrow_cost_dominated"
    BELOW_MIN_EDGE = "below_min_edge"
    NOT_WATCHED = "not_watched"  # the daemon's, never an evaluation's (module docstring)


PRECEDENCE: tuple[Reason, ...] = tuple(Reason)  # declaration order is the precedence
_RANK = {reason: rank for rank, reason in enumerate(PRECEDENCE)}
EVALUATED: tuple[Reason, ...] = tuple(r for r in PRECEDENCE if r is not Reason.NOT_WATCHED)  # what rules can give


class Outcome(StrEnum):
    QUALIFIED = "qualified"
    REJECTED = "rejected"


def ordered(reasons: Iterable[Reason]) -> tuple[Reason, ...]:
    """The distinct reasons in precedence order (the first is the primary)."""
    return tuple(sorted(set(reasons), key=_RANK.__getitem__))


# A reason set as an int, bit ``i`` = ``PRECEDENCE[i]``: the evaluator ORs flags in whatever order it checks
# them, and the precedence-ordered tuple is one dict hit (no set, no sort, no per-call tuple).
FLAG: dict[Reason, int] = {reason: 1 << rank for rank, reason in enumerate(PRECEDENCE)}
_BY_FLAGS: dict[int, tuple[Reason, ...]] = {0: ()}  # at most 2**12 entries, far fewer in practice


def from_flags(flags: int) -> tuple[Reason, ...]:
    """The reasons whose :data:`FLAG` bits are set in ``flags``, in precedence order (== :func:`ordered`)."""
    found = _BY_FLAGS.get(flags)
    if found is None:
        found = _BY_FLAGS[flags] = tuple(reason for reason in PRECEDENCE if flags & FLAG[reason])
    return found


def primary(reasons: Iterable[Reason]) -> Reason | None:
    """The reason that explains the rejection best, or ``None`` for a qualified candidate."""
    found = ordered(reasons)
    return found[0] if found else None
