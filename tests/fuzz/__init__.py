"""Fuzz tests: hostile ONNX files, images, state files and command lines (seeded, bounded)."""
