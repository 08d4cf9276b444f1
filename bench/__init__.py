"""Benchmarks (`make bench`): figures as ratios to floors measured in the same run."""
