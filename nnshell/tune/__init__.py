"""Graph tuning before or after quantization: NNTool's ``weight_equalization``,
``balance_filters`` and ``bcorr``, as library functions over a :class:`~nnshell.session.Session`.

Each computes its new graph (and quantization) completely and only then assigns it, so an
error or Ctrl-C part-way leaves the session as it was.
"""
