"""Preprocessing: face alignment, motion representations, frame sampling and caching."""
