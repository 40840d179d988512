"""Reading checkpoints from metadata only: the one place that parses weight-file headers.

* :mod:`quantspec.checkpoint.inventory` -- the tensor inventory of a model folder (safetensors
  headers validated strictly, with each tensor's byte range; GGUF tensor infos);
* :mod:`quantspec.checkpoint.gguf_header` -- the bounded GGUF header parser.

The planner, the runtime's streaming reader, ``validate --tensors`` and the Wan repack all read
headers through here; torch dtypes are mapped in the runtime only.
"""
