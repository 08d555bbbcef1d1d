"""Evaluation: verification protocol, thresholds, attacks and robustness reports."""
