"""Benchmarks: each module measures tutorstream side by side with a baseline in the same run."""
