"""Benchmarks: the demo, perf_analyzer runs, in-process baselines and quality tables."""
