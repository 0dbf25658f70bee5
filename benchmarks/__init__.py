"""Benchmarks, each runnable as `python -m benchmarks.NAME`; each prints one JSON line at the end."""
