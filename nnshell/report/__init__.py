"""Rendering of library results as rich tables (the library itself never prints)."""
