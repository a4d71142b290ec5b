"""Optimizers and LR schedules (being written)."""
