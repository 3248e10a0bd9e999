"""Calibration and quantization (statistics first; the SQ8 quantizer builds on them)."""
