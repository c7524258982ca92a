"""Execution constraints, fees and strategy economics: pure, deterministic, auditable code.

``rules`` imports no I/O and nothing from ``scanner``; time is always an argument.
"""
