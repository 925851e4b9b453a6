"""Ranking and captioning metrics."""
