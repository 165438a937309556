"""Benchmarks (run ``python bench/benchmark.py``)."""
