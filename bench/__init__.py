"""Benchmarks: each script measures one target and prints the figures BENCHMARKS.md quotes."""
