"""Checkpoints shipped inside the package (data only)."""
