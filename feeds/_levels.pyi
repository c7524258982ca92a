# The compiled twin of feeds/_levels_py.py (feeds/_levels.c).
from feeds.updates import Level

def apply_bids(
    book: dict[float, float], keys: list[float], changes: list[Level], worst: float, mark: float, need: float, /
) -> bool: ...
def apply_asks(
    book: dict[float, float], keys: list[float], changes: list[Level], worst: float, mark: float, need: float, /
) -> bool: ...
def first_bad_level(levels: list[Level], /) -> int: ...
