"""Code generation: the portable C99 target (``c_emitter``, ``verify``) and NNTool's AutoTiler
model file. Modules load lazily; import the one you need."""
