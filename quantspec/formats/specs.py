"""One spec per checkpoint format: what names it, which module reads it, which raw model and JSON
Schema describe its file. The tables the rest of quantspec needs (``quant_method`` dispatch, the
readers, the schema files, the list of supported formats in messages) are derived from here, so a
format is added in one place (a test checks every family has a spec).
"""

from __future__ import annotations

from dataclasses import dataclass

from quantspec.vocab import FormatFamily


@dataclass(frozen=True)
class FormatSpec:
    """One format family."""

    family: FormatFamily
    #: How messages name it among the supported formats.
    display: str
    #: ``quant_method`` values (lower-case) that select it.
    methods: tuple[str, ...] = ()
    #: Module with ``read(data, *, file, source, prefix)`` for description objects, if any.
    reader: str | None = None
    #: ``module:Model`` of the raw model of its description file, and that model's schema file.
    raw_model: str | None = None
    raw_schema: str | None = None


F = FormatFamily
FORMATS: dict[FormatFamily, FormatSpec] = {s.family: s for s in (
    FormatSpec(F.MODELSLIM, "modelslim (quant_model_description.json)", reader="quantspec.formats.modelslim",
               raw_model="quantspec.formats.modelslim:ModelSlimDescription",
               raw_schema="modelslim_description.schema.json"),
    FormatSpec(F.AWQ, "awq", ("awq",), "quantspec.formats.awq", "quantspec.formats.awq:AwqConfig",
               "awq_config.schema.json"),
    FormatSpec(F.GPTQ, "gptq", ("gptq",), "quantspec.formats.gptq", "quantspec.formats.gptq:GptqConfig",
               "gptq_config.schema.json"),
    FormatSpec(F.AUTO_ROUND, "auto-round", ("auto-round", "auto_round", "intel/auto-round"),
               "quantspec.formats.auto_round", "quantspec.formats.auto_round:AutoRoundConfig",
               "auto_round_config.schema.json"),
    # "sparseml": very early compressed-tensors files and test fixtures
    FormatSpec(F.COMPRESSED_TENSORS, "compressed-tensors", ("compressed-tensors", "compressed_tensors", "sparseml"),
               "quantspec.formats.compressed_tensors",
               "quantspec.formats.compressed_tensors:CompressedTensorsConfig",
               "compressed_tensors_config.schema.json"),
    FormatSpec(F.GGUF, "gguf", raw_model="quantspec.formats.gguf:GgufHeader", raw_schema="gguf_header.schema.json"),
    FormatSpec(F.MXFP8_ONLINE, "mxfp8 (online, --quantization mxfp8)",
               raw_model="quantspec.formats.mxfp8_online:Mxfp8Request", raw_schema="mxfp8_request.schema.json"),
    FormatSpec(F.UNQUANTIZED, "unquantized (no description)"),
)}

#: ``quant_method`` (lower-case) -> family.
METHODS: dict[str, FormatFamily] = {m: s.family for s in FORMATS.values() for m in s.methods}
#: Family -> module that reads its description objects.
READERS: dict[FormatFamily, str] = {s.family: s.reader for s in FORMATS.values() if s.reader}
#: Formats quantspec reads, as named in messages about unsupported formats.
SUPPORTED_FORMATS: tuple[str, ...] = tuple(s.display for s in FORMATS.values() if s.family is not F.UNQUANTIZED)
