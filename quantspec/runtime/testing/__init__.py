"""Test-model builders: tiny seeded transformers models and quantized checkpoint exporters.

Used by the end-to-end tests, the demo and the benchmarks (imports torch and transformers):

* :mod:`quantspec.runtime.testing.models` -- tiny Llama / Qwen3-MoE / Mixtral models;
* :mod:`quantspec.runtime.testing.export` -- ModelSlim, AWQ, GPTQ and auto-round folders
  written with the project's writers;
* :mod:`quantspec.runtime.testing.export_ct` -- compressed-tensors folders written by the
  compressed-tensors library;
* :mod:`quantspec.runtime.testing.export_gguf` -- GGUF files written by gguf-py;
* :mod:`quantspec.runtime.testing.cases` -- the end-to-end cases (one or more per matrix row) and bounds;
* :mod:`quantspec.runtime.testing.metrics` -- logit, weight and expert-output comparisons.
"""
