"""The test kit (in the repository, not in the wheel): tiny seeded transformers models, quantized
checkpoint exporters, the project's layout writers and the linear-scheme cases, shared by
``tests/``, ``bench/`` and ``examples/`` (none of which imports another; this imports torch and
transformers):

* :mod:`testkit.writers` -- float weights into each on-disk layout;
* :mod:`testkit.scheme_cases`, :mod:`testkit.oracles` -- one case per linear scheme and layout,
  with an oracle independent of the op emulation;
* :mod:`testkit.models` -- tiny Llama / Qwen3-MoE / Mixtral models;
* :mod:`testkit.export` -- ModelSlim, AWQ, GPTQ and auto-round folders
  written with the project's writers;
* :mod:`testkit.export_ct` -- compressed-tensors folders written by the
  compressed-tensors library;
* :mod:`testkit.export_gguf` -- GGUF files written by gguf-py;
* :mod:`testkit.cases` -- the end-to-end cases (one or more per matrix row) and bounds;
* :mod:`testkit.metrics` -- logit, weight and expert-output comparisons.
"""
