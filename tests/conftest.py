"""Shared test settings. Timing constants scale with ARBSCAN_TESTS_TIMEOUT_FACTOR (slow CI machines)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TIMEOUT_FACTOR = float(os.environ.get("ARBSCAN_TESTS_TIMEOUT_FACTOR", "1"))


def timeout(seconds: float) -> float:
    """A test deadline scaled for slow or busy machines (never an assertion about speed)."""
    return seconds * TIMEOUT_FACTOR


@pytest.fixture
def data_dir() -> Path:
    """The bundled real recordings."""
    return DATA
