"""Projection folds: pure functions from events to read models, applied by services."""
