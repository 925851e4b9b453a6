"""Helpers for the entry points: instantiation, logging, run folders."""
