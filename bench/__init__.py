"""Benchmarks: scripts that print speed figures."""
