"""Quantization analysis: why a quantized network loses accuracy and what to change.

- :mod:`~nnshell.analysis.qerror`: per-layer QSNR, cosine, max error and saturation, end to end
  or layer by layer (``qerror``);
- :mod:`~nnshell.analysis.qexplain`: the integer formula of one layer with its actual numbers;
- :mod:`~nnshell.analysis.astats`: activation statistics, the range each method chooses, and
  how the ranges converge as calibration images are added (``astats``);
- :mod:`~nnshell.analysis.compare`: one table comparing range methods (``aquant --compare``).

Every function returns plain data (dataclasses, dicts, lines of text); the shell renders them.
"""
