"""The engine's loop histogram is exposed exactly like prometheus_client's Histogram on the same values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from scanner.metrics import _LATENCY_BUCKETS, LoopHistogram


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_loop_histogram_matches_the_client_histogram_bucket_for_bucket():
    reference, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    histogram = Histogram("lat_seconds", "doc", buckets=_LATENCY_BUCKETS, registry=reference)
    loop = LoopHistogram("lat_seconds", "doc", _LATENCY_BUCKETS, ours)
    # On a bound (le: counted in that bucket), between bounds, past the last bound, zero.
    for value in (0.0, 1e-5, 3e-5, 1e-4, 0.2, 2.0, 1.0, 5e-5, 7e-4):
        histogram.observe(value)
        loop.observe(value)
    expected = _exposition(reference)
    assert _exposition(ours) == expected
    assert 'lat_seconds_bucket{le="1e-05"} 2.0' in expected and "lat_seconds_count 9.0" in expected
