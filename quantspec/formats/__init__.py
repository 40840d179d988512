"""Checkpoint descriptions: detection, one module per producer format, normalisation.

Public API (other layers code against these names):

- :func:`read_description` -- the normalised :class:`~quantspec.description.CheckpointDescription`
  of a model folder (raises :class:`~quantspec.errors.InvalidCheckpoint` with every fatal reason);
- :func:`detect` -- which files describe the quantization, the chosen format and conflicts;
- :func:`pipeline_components` -- component folders of a Diffusers pipeline;
- :func:`mxfp8_request_description` -- the description of an online MXFP8 request;
- :class:`Resolver` -- ``desc.resolver().resolve(module, cls)`` (or ``Resolver(desc)``): the
  same answers as ``desc.resolve`` in constant time for exact rules (use it for whole models);
  defined with the IR in :mod:`quantspec.description` and re-exported here.

GGUF helpers live in :mod:`quantspec.formats.gguf` (imported lazily: it needs numpy).
"""

from __future__ import annotations

from quantspec.description import Resolver
from quantspec.formats.detect import Detection, Source, SourceKind, detect, pipeline_components
from quantspec.formats.mxfp8_online import mxfp8_request_description
from quantspec.formats.read import read_description, unquantized_description

__all__ = [
    "Detection",
    "Resolver",
    "Source",
    "SourceKind",
    "detect",
    "mxfp8_request_description",
    "pipeline_components",
    "read_description",
    "unquantized_description",
]
