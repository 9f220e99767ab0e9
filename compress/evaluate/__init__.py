"""Evaluation: quality next to efficiency."""
