"""OrderBook.apply's per-level loop: the compiled one (feeds/_levels.c) against its Python reference.

The two must leave every side in the same state, to the bit (the level dict, prices and quantities, and
the window's sorted keys) and return the same best changed price. On real Binance diffs (the bundled spot
and USD-M BTCUSDT recordings, through the books' own sync and window upkeep) and on random diffs over a
small price grid, where a diff repeats a price, removes and re-adds it, and crosses the window's edge.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import feeds.book
import feeds.levels
from feeds import _levels_py
from feeds.book import Side
from feeds.updates import Level
from feeds.venues import detect
from feeds.verify import BookVerifier
from tests.engine_fixtures import btc_recordings

if os.environ.get("ARBSCAN_PURE_PYTHON") == "1":
    pytest.skip("installed without the compiled loop (ARBSCAN_PURE_PYTHON=1)", allow_module_level=True)
from feeds import _levels as compiled  # an install from a fresh clone builds it: a missing one fails

Apply = Callable[[dict[float, float], list[float], list[Level], float, float, float], bool]
LOOPS: dict[str, tuple[Apply, Apply]] = {
    "c": (compiled.apply_bids, compiled.apply_asks),
    "python": (_levels_py.apply_bids, _levels_py.apply_asks),
}
RECORDS = 40_000  # of the merged spot + USD-M timeline: ~3,400 diffs, with window cuts and refills


def test_the_book_uses_the_compiled_loop() -> None:
    assert feeds.levels.LEVELS_LOOP == "c"
    assert feeds.book._apply_bids is compiled.apply_bids and feeds.book._apply_asks is compiled.apply_asks


def _replay(loop: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """Every book's full state after every record, with ``loop`` as OrderBook.apply's level loop."""
    bids, asks = LOOPS[loop]
    monkeypatch.setattr(feeds.book, "_apply_bids", bids)
    monkeypatch.setattr(feeds.book, "_apply_asks", asks)
    recordings = btc_recordings()
    verifiers = [BookVerifier(detect(r)) for r in recordings]
    merged = sorted(
        ((frame.recv_ns, i, n, frame) for i, r in enumerate(recordings) for n, frame in enumerate(r.frames())),
        key=lambda item: item[:3],
    )
    states = []
    for _ns, i, _n, frame in islice(merged, RECORDS):
        verifiers[i].feed(frame)
        for verifier in verifiers:
            for key, sync in verifier.syncs.items():
                book = sync.book
                window = (tuple(book._bid_keys), tuple(book._ask_keys))
                states.append((key, book.version, tuple(book.walk_versions), book._bid_all, book._ask_all, *window))
    for verifier in verifiers:  # the final dicts, whole (every level, deep ones included)
        for key, sync in verifier.syncs.items():
            states.append((key, sorted(sync.book._bids.items()), sorted(sync.book._asks.items())))
            states.append((key, sync.book.levels(Side.BID, 5), sync.book.levels(Side.ASK, 5)))
    return states


@pytest.mark.slow  # ~10 s: 40,000 real records, twice, every book's window compared after each
def test_real_diffs_leave_the_same_books_with_either_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        ours = _replay("c", patch)
    with monkeypatch.context() as patch:
        reference = _replay("python", patch)
    assert len(ours) == len(reference) > RECORDS
    first_difference = next((n for n, (a, b) in enumerate(zip(ours, reference, strict=True)) if a != b), None)
    assert first_difference is None, (ours[first_difference], reference[first_difference])
    windows = {len(state[5]) for state in ours if len(state) == 7}
    assert max(windows) > feeds.book.WINDOW  # the window grew past its size and was cut back meanwhile


PRICES = st.sampled_from([100.0 + 0.5 * k for k in range(-12, 13)])
QUANTITIES = st.sampled_from([0.0, 0.0, 0.25, 1.0, 3.5])  # a third of the levels are removals
DIFFS = st.lists(st.lists(st.tuples(PRICES, QUANTITIES), max_size=12), min_size=1, max_size=12)
# The walks' watermark (a key, or none) and need: on the price grid, so diffs land on it, above and below.
MARKS = st.one_of(st.just(math.inf), PRICES, PRICES.map(lambda p: -p))
NEEDS = st.sampled_from([0.0, 0.25, 1.0, 2.0])


def _reaches(bid_side: bool, diff: list[Level], mark: float, need: float) -> bool:
    """What the loops must say, from its definition: the best changed key is past the watermark, or at it
    with some quantity set there below the need."""
    edge = max(p if bid_side else -p for p, _ in diff)
    return edge > mark or (edge == mark and any(q < need for p, q in diff if (p if bid_side else -p) == edge))


def _side(
    loop: str, bid_side: bool, window: int, diffs: list[list[Level]], marks: list[tuple[float, float]]
) -> list[tuple[object, ...]]:
    """A side under ``diffs`` with ``loop``, its window cut to its best ``window`` keys before each diff,
    each diff applied against the next (mark, need) of ``marks``."""
    apply = LOOPS[loop][0 if bid_side else 1]
    levels: dict[float, float] = {}
    keys: list[float] = []
    complete = True  # the window holds every level
    states: list[tuple[object, ...]] = []
    for diff, (mark, need) in zip(diffs, marks, strict=True):
        worst = -math.inf if complete else keys[0] if keys else math.inf
        reached = apply(levels, keys, diff, worst, mark, need) if diff else None  # never an empty side
        states.append((tuple(keys), tuple(sorted(levels.items())), reached))
        if diff:
            assert reached is _reaches(bid_side, diff, mark, need)
        if len(keys) > window:
            del keys[: len(keys) - window]
            complete = False
        elif not keys and levels:  # emptied while deeper levels exist: refill as OrderBook._fit does
            keys[:] = sorted(p if bid_side else -p for p in levels)
            complete = True
    return states


@settings(max_examples=300, deadline=None)
@given(
    diffs=DIFFS,
    window=st.integers(min_value=1, max_value=6),
    bid_side=st.booleans(),
    marks=st.lists(st.tuples(MARKS, NEEDS), min_size=12, max_size=12),
)
def test_random_diffs_leave_the_same_side_with_either_loop(
    diffs: list[list[Level]], window: int, bid_side: bool, marks: list[tuple[float, float]]
):
    marks = marks[: len(diffs)]
    ours = _side("c", bid_side, window, diffs, marks)
    assert ours == _side("python", bid_side, window, diffs, marks)
    for keys, levels, _edge in ours:  # and the window is what it must be: sorted, distinct, levels of the side
        assert list(keys) == sorted(set(keys))
        assert {k if bid_side else -k for k in keys} <= {p for p, _ in levels}  # type: ignore[attr-defined]


@pytest.mark.parametrize("loop", ["c", "python"])
def test_a_price_removed_then_readded_below_the_window_then_removed_again_leaves_the_window_alone(loop: str):
    """The window's worst price leaves, comes back below the window (the dict only: the window's worst is
    still the old key for the rest of the diff), and leaves again: the window must not lose another key
    (found by review: no random diff reached this branch)."""
    apply_bids, apply_asks = LOOPS[loop]
    bids, bid_keys = {1.0: 1.0, 2.0: 1.0, 3.0: 1.0}, [2.0, 3.0]
    assert apply_bids(bids, bid_keys, [(2.0, 0.0), (2.0, 1.0), (2.0, 0.0)], 2.0, 2.0, 0.5) is True  # 0.0 < need
    assert (bid_keys, bids) == ([3.0], {1.0: 1.0, 3.0: 1.0})
    asks, ask_keys = {1.0: 1.0, 2.0: 1.0, 3.0: 1.0}, [-2.0, -1.0]  # the best two asks, negated
    assert apply_asks(asks, ask_keys, [(2.0, 0.0), (2.0, 1.0), (2.0, 0.0)], -2.0, -3.0, 0.5) is True  # past the mark
    assert (ask_keys, asks) == ([-1.0], {1.0: 1.0, 3.0: 1.0})
    # An emptied window over deeper levels (worst = +inf until it is refilled): nothing joins it.
    deep, empty = {1.0: 1.0}, []
    assert apply_bids(deep, empty, [(5.0, 2.0), (1.0, 0.0)], math.inf, 5.0, 2.0) is False  # 2.0 covers the need
    assert (empty, deep) == ([], {5.0: 2.0})


@pytest.mark.parametrize("loop", ["c", "python"])
def test_a_malformed_level_is_refused_by_either_loop(loop: str) -> None:
    apply_bids, _ = LOOPS[loop]
    with pytest.raises(ValueError, match=r"unpack|pair"):
        apply_bids({}, [], [(1.0, 2.0, 3.0)], -math.inf, math.inf, 0.0)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        apply_bids({}, [], [("1.0", 2.0)], -math.inf, math.inf, 0.0)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        apply_bids({}, [], [], -math.inf, math.inf, 0.0)  # the book never applies a side without changes


def test_the_compiled_loop_takes_floats_only() -> None:
    """No Python code (an odd number's __hash__ or __eq__) may run inside the loop and change its lists."""
    with pytest.raises(TypeError, match="a price or quantity must be a float, got int"):
        compiled.apply_bids({}, [], [(1, 2.0)], -math.inf, math.inf, 0.0)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got str"):
        compiled.apply_asks({}, [], [(1.0, "2")], -math.inf, math.inf, 0.0)  # type: ignore[list-item]


def test_arbscan_pure_python_selects_the_reference_loop_at_import() -> None:
    """The switch a machine without a compiler installs with also holds at run time (a stale build in the
    tree must not win over it), and the daemon's build info says which loop runs."""
    import subprocess
    import sys

    probe = "import feeds.levels, scanner.metrics as m; print(feeds.levels.LEVELS_LOOP, m.Metrics().build_info._value)"
    runs = {
        flag: subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "ARBSCAN_PURE_PYTHON": flag},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for flag in ("1", "0")
    }
    assert runs["1"].startswith("python ") and "'book_levels_loop': 'python'" in runs["1"]
    assert runs["0"].startswith("c ") and "'book_levels_loop': 'c'" in runs["0"]


@pytest.mark.parametrize("loop", ["c", "python"])
def test_a_price_set_twice_at_the_watermark_reaches_the_walks_if_either_quantity_is_short(loop: str) -> None:
    """The verdict is the reference's ``any``: at the watermark, one quantity below the need is enough,
    wherever it comes in the diff (the walk that stopped there needed more than it may now find)."""
    apply_bids, apply_asks = LOOPS[loop]
    for bids in ([(2.0, 3.5), (2.0, 0.25), (1.0, 0.0)], [(2.0, 0.25), (1.0, 5.0), (2.0, 3.5)]):
        assert apply_bids({}, [], bids, -math.inf, 2.0, 1.0) is True
    for asks in ([(1.0, 3.5), (1.0, 0.25), (2.0, 0.0)], [(1.0, 0.25), (2.0, 5.0), (1.0, 3.5)]):
        assert apply_asks({}, [], asks, -math.inf, -1.0, 1.0) is True  # the mark is the key of the ask 1.0
    assert apply_bids({}, [], [(2.0, 3.5), (2.0, 1.5)], -math.inf, 2.0, 1.0) is False  # both cover it
    assert apply_bids({}, [], [(2.0, 0.25)], -math.inf, 2.5, 1.0) is False  # short, but below the mark
