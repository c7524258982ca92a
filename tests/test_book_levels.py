"""A book's side: the compiled one (feeds/_levels.c: levels as doubles in its own hash table) against its
Python reference (feeds/_levels_py.py: a dict and a sorted list).

The two must answer alike to the bit (every apply's answer, every walk's numbers, every read) and keep the
same window (its keys, and whether it is the whole side). On real Binance diffs (the bundled spot and USD-M
BTCUSDT recordings, books of thousands of levels a side, through the books' own sync, with walks after every
record) and on random operations over a small price grid, where a diff repeats a price, removes and re-adds
it, and crosses the window's edge; and over a wide one, which grows the hash table and makes its probe
chains long (every removal moves entries back over the hole).
"""

from __future__ import annotations

import math
import os
import random
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import feeds.book
import feeds.levels
from feeds import _levels_py
from feeds.book import OrderBook, Side
from feeds.venues import detect
from feeds.verify import BookVerifier
from tests.engine_fixtures import btc_recordings

if os.environ.get("ARBSCAN_PURE_PYTHON") == "1":
    pytest.skip("installed without the compiled side (ARBSCAN_PURE_PYTHON=1)", allow_module_level=True)
from feeds import _levels as compiled  # an install from a fresh clone builds it: a missing one fails

SIDES = {"c": compiled.Side, "python": _levels_py.Side}
RECORDS = 40_000  # of the merged spot + USD-M timeline: ~3,400 diffs, with window cuts and refills


def test_the_book_uses_the_compiled_side() -> None:
    assert feeds.levels.LEVELS_LOOP == "c"
    assert feeds.book.LevelSide is compiled.Side
    assert type(OrderBook("k")._bids) is compiled.Side


def _state(side: compiled.Side | _levels_py.Side) -> tuple[object, ...]:
    return len(side), side.complete, side.window_keys()


def _replay(impl: str, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every book's state after every record, and walks of both sides, with ``impl`` as the book's sides.

    Walks as reprs: a float's repr is exact, so equal strings are equal bits (and a NaN equals a NaN)."""
    monkeypatch.setattr(feeds.book, "LevelSide", SIDES[impl])
    recordings = btc_recordings()
    verifiers = [BookVerifier(detect(r)) for r in recordings]
    merged = sorted(
        ((frame.recv_ns, i, n, frame) for i, r in enumerate(recordings) for n, frame in enumerate(r.frames())),
        key=lambda item: item[:3],
    )
    states: list[object] = []
    for n, (_ns, i, _n, frame) in enumerate(islice(merged, RECORDS)):
        verifiers[i].feed(frame)
        for verifier in verifiers:
            for key, sync in verifier.syncs.items():
                book = sync.book
                states.append((key, book.version, tuple(book.walk_versions), _state(book._bids), _state(book._asks)))
                if n % 11 == 0:  # walks move the watermarks (and so the walk versions later): on both alike
                    walks = [book.walk(Side.ASK, quote=250_000.0), book.walk(Side.BID, base=0.75)]  # ~4 BTC deep
                    if n % 1001 == 0:
                        walks.append(book.walk(Side.ASK, base=1e9))  # more than the side holds: widened
                    states.append(repr((book.best_bid(), book.best_ask(), walks)))
    for verifier in verifiers:  # every level at the end (deep ones included), and the raw reads
        for key, sync in verifier.syncs.items():
            book = sync.book
            states.append(repr((key, book.levels(Side.BID), book.levels(Side.ASK), book.levels(Side.BID, 5))))
    return states


@pytest.mark.slow  # ~15 s: 40,000 real records, twice, every book compared after each
def test_real_diffs_leave_the_same_books_with_either_side(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        ours = _replay("c", patch)
    with monkeypatch.context() as patch:
        reference = _replay("python", patch)
    assert len(ours) == len(reference) > RECORDS
    first_difference = next((n for n, (a, b) in enumerate(zip(ours, reference, strict=True)) if a != b), None)
    assert first_difference is None, (ours[first_difference], reference[first_difference])
    walked = [s for s in ours if isinstance(s, str) and "Fill(" in s]
    assert len(walked) > 1_000 and any("False)]" in s for s in walked)  # walks compared, some ran out
    assert any(not state[3][1] for state in ours if isinstance(state, tuple))  # windows were cut back
    assert max(len(s) for s in ours[-4:]) > 100_000  # type: ignore[arg-type]  # thousands of levels a side


GRID = [100.0 + 0.5 * k for k in range(-12, 13)]
PRICES = st.sampled_from(GRID)
# A third of the levels are removals; quantities that are not binary fractions make rounding show.
QUANTITIES = st.sampled_from([0.0, 0.0, 0.0, 0.25, 1.0, 3.5, 0.1, 0.3, 1.7])
DIFF = st.lists(st.tuples(PRICES, QUANTITIES), min_size=1, max_size=12)
# The walks' watermark (a key, or none) and need: on the price grid, so diffs land on it, above and below.
MARKS = st.one_of(st.just(math.inf), PRICES, PRICES.map(lambda p: -p))
NEEDS = st.sampled_from([0.0, 0.25, 1.0, 2.0])
OVERLAYS = st.one_of(st.none(), st.tuples(PRICES, st.sampled_from([0.25, 1.0, 3.5, 0.1, 1.7])))
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), DIFF, MARKS, NEEDS),
        st.tuples(
            st.just("walk"),
            OVERLAYS,
            st.booleans(),  # by base
            # the target: inside a level, several, more than all
            st.sampled_from([0.1, 0.7, 1.0, 2.9, 4.0, 400.0, 333.3, 1e9]),
            st.sampled_from([0, 1, 2]),  # base units, linear contracts, inverse contracts
            st.sampled_from([1.0, 0.01, 100.0, 0.3]),  # contract size
        ),
        st.tuples(st.just("levels"), st.integers(min_value=0, max_value=8)),
        st.tuples(st.just("truncate"), st.integers(min_value=-2, max_value=8)),  # below 0: every level goes
        st.tuples(st.just("best")),
        st.tuples(st.just("clear")),
    ),
    min_size=1,
    max_size=30,
)


def _run(impl: str, ask: bool, window: int, ops: list[tuple[object, ...]]) -> list[str]:
    side = SIDES[impl](ask, window)
    out = []
    for op, *args in ops:
        if op == "apply":
            result: object = side.apply(*args)  # type: ignore[arg-type]
        elif op == "walk":
            result = side.walk(*args)  # type: ignore[arg-type]
        elif op == "levels":
            result = side.levels(*args)  # type: ignore[arg-type]
        elif op == "truncate":
            result = side.truncate(*args)  # type: ignore[arg-type]
        elif op == "best":
            result = (side.best(), side.best_price())
        else:
            result = side.clear()
        out.append(repr((op, result, _state(side))))
        keys = side.window_keys()
        assert list(keys) == sorted(set(keys))
        every = sorted(-p if ask else p for p, _ in side.levels()) if len(side) else []
        side_keys = side.window_keys()  # (levels() may have widened it: compare after)
        assert list(side_keys) == every[len(every) - len(side_keys) :]  # the window is the side's best keys
    return out


def _reaches(bid_side: bool, diff: list[tuple[float, float]], mark: float, need: float) -> bool:
    """What apply must say, from its definition: the best changed key is past the watermark, or at it with
    some quantity set there below the need."""
    edge = max(p if bid_side else -p for p, _ in diff)
    return edge > mark or (edge == mark and any(q < need for p, q in diff if (p if bid_side else -p) == edge))


@settings(max_examples=400, deadline=None)
@given(ops=OPS, window=st.integers(min_value=4, max_value=6), ask=st.booleans())
def test_random_operations_give_the_same_answers_on_either_side(
    ops: list[tuple[object, ...]], window: int, ask: bool
) -> None:
    ours = _run("c", ask, window, ops)
    assert ours == _run("python", ask, window, ops)
    for (op, *args), line in zip(ops, ours, strict=True):
        if op == "apply":
            diff, mark, need = args
            assert line.startswith(f"('apply', {_reaches(not ask, diff, mark, need)},")  # type: ignore[arg-type]


WIDE = st.lists(
    st.tuples(st.integers(min_value=1, max_value=3_000).map(lambda k: k * 0.01), st.sampled_from([0.0, 1.5])),
    min_size=1,
    max_size=400,
)


@settings(max_examples=60, deadline=None)
@given(diffs=st.lists(WIDE, min_size=1, max_size=8), ask=st.booleans())
def test_a_wide_side_grows_its_table_and_keeps_every_level(diffs: list[list[tuple[float, float]]], ask: bool) -> None:
    """Hundreds of distinct prices grow the table several times, and half the changes remove a level (moving
    the entries after it back in their probe chain): every level stays found, at its last quantity."""
    ours, reference = compiled.Side(ask, 8), _levels_py.Side(ask, 8)
    expected: dict[float, float] = {}
    for diff in diffs:
        assert ours.apply(diff, math.inf, 0.0) == reference.apply(diff, math.inf, 0.0)
        for price, qty in diff:
            if qty:
                expected[price] = qty
            else:
                expected.pop(price, None)
        assert ours.window_keys() == reference.window_keys() and ours.complete == reference.complete
        assert len(ours) == len(expected)
    assert ours.levels() == reference.levels() == sorted(expected.items(), reverse=not ask)


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(min_value=8, max_value=64),
    ask=st.booleans(),
    count=st.integers(min_value=100, max_value=400),
    seed=st.integers(min_value=0, max_value=2**32),
    cuts=st.lists(st.floats(min_value=0.3, max_value=1.0), min_size=1, max_size=6),
)
def test_a_window_emptied_from_the_top_is_refilled_with_the_best_levels(
    window: int, ask: bool, count: int, seed: int, cuts: list[float]
) -> None:
    """Removing most or all of the window (the price running through the book) refills it from the table
    with the side's best ``window`` keys, sorted: the compiled refill (a heap) against the reference's."""
    sides = [SIDES[impl](ask, window) for impl in ("c", "python")]
    levels = random.Random(seed).sample(range(1, 2_001), count)  # (drawn by Hypothesis, a set this size is slow)
    initial = [(k * 0.5, 1.0 + (k % 7) * 0.1) for k in levels]
    for side in sides:
        side.apply(initial, math.inf, 0.0)
    for cut in cuts:
        keys = sides[0].window_keys()
        if not keys:
            break  # every level gone
        best = [abs(k) for k in keys[len(keys) - max(1, int(len(keys) * cut)) :]]
        for side in sides:
            side.apply([(p, 0.0) for p in best], math.inf, 0.0)
        assert _state(sides[0]) == _state(sides[1])
        every = sorted(-p if ask else p for p in sides[1]._levels)  # (levels() would widen the window)
        window_keys = sides[0].window_keys()
        assert list(window_keys) == every[len(every) - len(window_keys) :]


def test_walks_agree_to_the_bit_on_a_grid_of_amounts() -> None:
    """Every kind of walk, by base and by quote, over quantities and amounts that are not binary fractions:
    the compiled walk's numbers, need included, are the reference's to the last bit (a regrouped product
    or a fused multiply-add would round differently in some of these)."""
    quantities = [0.1, 0.3, 0.7, 1.7, 2.3, 0.013, 5.9, 0.33]
    prices = [101.3, 101.7, 102.1, 102.9, 103.3, 104.1, 105.7, 106.9]
    sides = [SIDES[impl](ask, 4) for impl in ("c", "python") for ask in (False, True)]
    for side in sides:
        side.apply(list(zip(prices, quantities, strict=True)), math.inf, 0.0)
    targets = [k * 0.037 + j for k in range(1, 40) for j in (0.0, 0.9, 3.1, 200.0, 777.7)]
    for overlay in (None, (100.9, 0.21)):
        for kind, size in ((0, 1.0), (1, 0.01), (1, 3.3), (2, 100.0), (2, 7.7)):
            for by_base in (True, False):
                for target in targets:
                    walks = [repr(side.walk(overlay, by_base, target, kind, size)) for side in sides]
                    assert walks[:2] == walks[2:], (overlay, kind, size, by_base, target)


@pytest.mark.parametrize("impl", ["c", "python"])
def test_a_cleared_side_takes_a_diff_whole(impl: str) -> None:
    """After clear() a side is whole again (an empty side holds every level it has): a diff of more
    levels than the window, up to twice it, all stays in the window, as on a new side."""
    side = SIDES[impl](False, 4)
    side.apply([(float(p), 1.0) for p in range(1, 21)], math.inf, 0.0)
    assert not side.complete  # cut back
    side.clear()
    assert (len(side), side.complete, side.window_keys()) == (0, True, ())
    side.apply([(float(p), 1.0) for p in range(1, 8)], math.inf, 0.0)
    assert side.window_keys() == tuple(float(p) for p in range(1, 8)) and side.complete


@pytest.mark.parametrize("impl", ["c", "python"])
def test_a_nan_quantity_does_not_hide_a_need_at_the_watermark(impl: str) -> None:
    """``any(q < need ...)`` over the quantities set at the best changed key: a NaN one (never below
    anything) must not stop a later one from counting. The protocols refuse NaN before a book sees it."""
    side = SIDES[impl](False, 4)
    assert side.apply([(100.0, math.nan), (100.0, 0.5)], 100.0, 1.0) is True
    assert side.apply([(100.0, 0.5), (100.0, math.nan)], 100.0, 1.0) is True
    assert side.apply([(100.0, math.nan)], 100.0, 1.0) is False


def test_a_refused_diff_changes_nothing_on_the_compiled_side() -> None:
    """The compiled side refuses a level the book could not hold (here a NaN price, after a valid removal): it
    applied the levels before it and left the rest, so the side changed while the book's walk version and
    id did not (cached walks served a removed level). Every level is checked first now."""
    side = compiled.Side(False, 4)
    side.apply([(100.0, 1.0), (99.0, 5.0)], math.inf, 0.0)
    with pytest.raises(ValueError, match="a book price must be a finite number above 0"):
        side.apply([(100.0, 0.0), (math.nan, 1.0)], math.inf, 0.0)
    assert side.levels(10) == [(100.0, 1.0), (99.0, 5.0)] and len(side) == 2


@pytest.mark.parametrize(
    ("overlay", "by_base", "target", "kind", "size"),
    [
        (None, True, 0.0, 0, 1.0),
        (None, True, -1.0, 1, 0.0),
        ((0.0, 1.0), True, 5.0, 2, 1.0),
    ],
)
def test_a_walk_divides_by_zero_where_the_reference_does(
    overlay: tuple[float, float] | None, by_base: bool, target: float, kind: int, size: float
) -> None:
    """Where the reference's float division raises ZeroDivisionError, the compiled walk raised nothing and
    returned NaN or an infinity (the book's walk never asks such amounts: targets are above 0)."""
    for impl in ("c", "python"):
        side = SIDES[impl](False, 4)
        side.apply([(100.0, 2.0), (99.0, 1.0)], math.inf, 0.0)
        with pytest.raises(ZeroDivisionError):
            side.walk(overlay, by_base, target, kind, size)


@pytest.mark.parametrize("impl", ["c", "python"])
def test_a_diff_of_lists_and_tuples_alike_is_applied(impl: str) -> None:
    """The reference compared whole levels to find the best changed price, and a list beside a tuple raised
    TypeError after the side had changed; the compiled side took it."""
    for ask in (False, True):
        side = SIDES[impl](ask, 4)
        assert side.apply([[100.0, 1.0], (99.0, 2.0)], math.inf, 0.0) is False  # no walk marked yet
        assert sorted(side.levels(10)) == [(99.0, 2.0), (100.0, 1.0)]


def test_the_compiled_side_leaks_nothing() -> None:
    """Every object it returns is the caller's: many calls leave no memory and no references behind."""
    import sys
    import tracemalloc

    side = compiled.Side(True, 4)
    side.apply([(100.0 + 0.5 * k, 1.0 + k) for k in range(40)], math.inf, 0.0)
    overlay = (99.5, 0.3)

    def calls() -> None:
        side.walk(overlay, False, 333.3, 0, 1.0)
        side.walk(None, True, 1e9, 2, 100.0)  # runs out: widens
        side.apply([(100.0, 2.0), (140.0, 0.0), (140.0, 1.0)], math.inf, 0.0)
        side.best(), side.best_price(), side.levels(3), side.levels(), side.window_keys()
        side.truncate(60)

    calls()
    before = (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None), sys.getrefcount(overlay))
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for _ in range(20_000):
        calls()
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    after = (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None), sys.getrefcount(overlay))
    assert grown < 20_000  # a float or tuple leaked per call would be 480 KB or more
    assert after == before


@pytest.mark.parametrize("impl", ["c", "python"])
def test_a_price_removed_then_readded_below_the_window_then_removed_again_leaves_the_window_alone(impl: str):
    """The window's worst price leaves, comes back below the window (the levels only: the window's worst is
    still the old key for the rest of the diff), and leaves again: the window must not lose another key
    (found by review: no random diff reached this branch)."""
    for ask in (False, True):
        side = SIDES[impl](ask, 4)
        side.apply([(float(p), 1.0) for p in range(1, 21)], math.inf, 0.0)  # 20 levels: cut back to the best 4
        sign = -1.0 if ask else 1.0
        window = [sign * p for p in ((4.0, 3.0, 2.0, 1.0) if ask else (17.0, 18.0, 19.0, 20.0))]
        assert side.window_keys() == tuple(window) and not side.complete
        worst = abs(window[0])
        assert side.apply([(worst, 0.0), (worst, 1.0), (worst, 0.0)], sign * worst, 0.5) is True  # 0.0 < need
        assert side.window_keys() == tuple(window[1:]) and len(side) == 19
        assert worst not in dict(side.levels())


@pytest.mark.parametrize("impl", ["c", "python"])
def test_a_malformed_level_is_refused_by_either_side(impl: str) -> None:
    side = SIDES[impl](False, 4)
    with pytest.raises(ValueError, match=r"unpack|pair"):
        side.apply([(1.0, 2.0, 3.0)], math.inf, 0.0)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        side.apply([("1.0", 2.0)], math.inf, 0.0)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        side.apply([], math.inf, 0.0)  # the book never applies a side without changes
    with pytest.raises(ValueError, match="at least 4"):
        SIDES[impl](False, 3)


@pytest.mark.parametrize("impl", ["c", "python"])
def test_counts_beyond_a_machine_word_mean_all_or_none(impl: str) -> None:
    """levels(n) and truncate(depth) take any int, as the reference's comparisons and slices do: a count
    past 2**63 means every level, a depth below -2**63 none (the C side saturates instead of raising
    OverflowError); a negative n is refused with its value in the message."""
    side = SIDES[impl](True, 4)
    side.apply([(float(p), 1.0) for p in range(1, 11)], math.inf, 0.0)
    every = [(float(p), 1.0) for p in range(1, 11)]
    assert side.levels(2**63) == every and side.levels(10**30) == every
    assert side.truncate(2**64) == [] and len(side) == 10
    with pytest.raises(ValueError, match=f"got -{2**70}$"):
        side.levels(-(2**70))
    with pytest.raises(ValueError, match=r"got -1$"):
        side.levels(-1)
    assert side.truncate(-(2**64)) == [float(p) for p in range(10, 0, -1)] and len(side) == 0


@pytest.mark.parametrize("method", ["levels", "truncate", "window_keys"])
def test_a_collection_cannot_change_the_side_under_a_read(method: str) -> None:
    """Building a result allocates, and on CPython 3.11 an allocation may start a garbage collection, which
    runs gc callbacks and finalizers: Python code that could clear or grow this very side mid-loop (found by
    review: stale counts read freed memory). The collector is held off while a result is built, so the
    result is the side as it was when called; the callback runs, but after."""
    import gc

    side = compiled.Side(False, 1000)
    mutated: list[str] = []
    armed = [False]

    def mutate(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and armed[0] and not mutated:
            mutated.append(method)
            side.clear()
            side.apply([(float(p), 1.0) for p in range(1000, 1200)], math.inf, 0.0)

    side.apply([(float(p), 1.0) for p in range(1, 31)], math.inf, 0.0)  # 30 levels: no free list for the result
    expected = {
        "levels": [(float(p), 1.0) for p in range(30, 0, -1)],
        "truncate": [float(p) for p in range(1, 31)],
        "window_keys": tuple(float(p) for p in range(1, 31)),
    }[method]
    keep: list[list[int]] = [[] for _ in range(200)]  # the list free list drained: a new list is allocated
    thresholds = gc.get_threshold()
    gc.callbacks.append(mutate)
    try:
        gc.set_threshold(1)
        while gc.get_count()[0] < 1:  # the next tracked allocation collects
            keep.append([])
        armed[0] = True  # (method calls below allocate nothing before the method runs)
        if method == "levels":
            result: object = side.levels()
        elif method == "truncate":
            result = side.truncate(0)
        else:
            result = side.window_keys()
        for _ in range(100):  # the collection held off runs at one of the next allocations
            if mutated:
                break
            keep.append([])
    finally:
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(mutate)
    assert result == expected
    assert mutated == [method]  # the callback did run (after the result was built) and grew the side
    assert len(side) == 200 and side.best_price() == 1199.0


def test_the_compiled_side_takes_floats_and_book_prices_only() -> None:
    """No Python code (an odd number's __float__) runs inside its loops; a price its table cannot hold (0 is
    its empty mark, a NaN is never found again) is refused, never stored. The protocols refuse such levels
    long before (feeds.levels.check_levels)."""
    side = compiled.Side(False, 4)
    with pytest.raises(TypeError, match="a price or quantity must be a float, got int"):
        side.apply([(1, 2.0)], math.inf, 0.0)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got str"):
        side.apply([(1.0, "2")], math.inf, 0.0)  # type: ignore[list-item]
    for price in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="a book price must be a finite number above 0"):
            side.apply([(price, 1.0)], math.inf, 0.0)
    assert len(side) == 0 and side.best() is None and math.isnan(side.best_price())
    side.apply([(100.0, 2.0)], math.inf, 0.0)
    assert side.walk(None, True, 1, 1, 1) == compiled.Side.walk(side, None, True, 1.0, 1, 1.0)  # scalars: any number
    for impl in SIDES.values():
        with pytest.raises(ValueError, match="kind must be"):
            impl(False, 4).walk(None, True, 1.0, 3, 1.0)
        tiny = impl(True, 4)
        tiny.apply([(1e308, 1.0)], math.inf, 0.0)
        with pytest.raises(ZeroDivisionError):  # a quote so small no base rounds in: no vwap, on either side
            tiny.walk(None, False, 5e-324, 0, 1.0)


def test_arbscan_pure_python_selects_the_reference_side_at_import() -> None:
    """The switch a machine without a compiler installs with also holds at run time (a stale build in the
    tree must not win over it), and the daemon's build info says which one runs."""
    import subprocess
    import sys

    probe = (
        "import feeds.levels, feeds.book, scanner.metrics as m; "
        "print(feeds.levels.LEVELS_LOOP, type(feeds.book.OrderBook('k')._bids).__module__, "
        "m.Metrics().build_info._value)"
    )
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
    assert runs["1"].startswith("python feeds._levels_py ") and "'book_levels_loop': 'python'" in runs["1"]
    assert runs["0"].startswith("c feeds._levels ") and "'book_levels_loop': 'c'" in runs["0"]
