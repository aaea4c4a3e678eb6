"""Reusable widgets: forms, progress card, metric charts, log tail, status header."""
