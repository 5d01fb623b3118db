"""Benchmarks: each compares against a reference tool in the same run and prints the ratio."""
