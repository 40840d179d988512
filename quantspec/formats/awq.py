"""AWQ (AutoAWQ, transformers ``AwqConfig``, GPTQModel AWQ, auto-round AWQ export).

``quant_method: "awq"``. ``version`` is a packing layout, not only a kernel choice: ``gemm``
(the default, ``qweight [K, N/8]`` with the AWQ nibble interleave), ``gemv``, ``gemv_fast``
(llm-awq) and ``marlin``. Only ``gemm`` runs on the NPU kernels. AWQ stores the true zero
(no off-by-one). ``modules_to_not_convert`` entries are **substrings** of module names, as
AutoAWQ and vLLM match them.
"""

from __future__ import annotations

from typing import Any

from quantspec.description import CheckpointDescription, Matcher, QuantSpec, Rule
from quantspec.errors import Code, InvalidCheckpoint, Reason, reason
from quantspec.formats.base import RawModel, extras_of, group_label, int_weight, parse_raw, pointer, weight_only_scheme
from quantspec.vocab import FormatFamily, Layout, MatchKind, ZeroPoint


class AwqConfig(RawModel):
    """Raw AWQ config: transformers names plus AutoAWQ's internal ones (``w_bit``, ``q_group_size``)."""

    quant_method: str | None = None
    bits: int | None = None
    w_bit: int | None = None
    group_size: int | None = None
    q_group_size: int | None = None
    zero_point: bool | None = None
    version: str | None = None
    backend: str | None = None
    modules_to_not_convert: list[str] | None = None
    # GPTQModel AWQ
    format: str | None = None
    checkpoint_format: str | None = None
    sym: bool | None = None
    lm_head: bool | None = None
    pack_dtype: str | None = None
    # auto-round's AWQ export
    provider: str | None = None
    autoround_version: str | None = None


LAYOUTS: dict[str, Layout] = {
    "gemm": Layout.AWQ_GEMM,
    # transformers loading choices that run GEMM-layout checkpoints
    "exllama": Layout.AWQ_GEMM,
    "ipex": Layout.AWQ_GEMM,
    "gemv": Layout.AWQ_GEMV,
    "gemv_fast": Layout.AWQ_GEMV_FAST,
    "llm-awq": Layout.AWQ_GEMV_FAST,
    "marlin": Layout.AWQ_MARLIN,
}


def normalise(raw: AwqConfig, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Normalise a parsed AWQ config."""
    findings: list[Reason] = []
    bits = raw.bits if raw.bits is not None else raw.w_bit
    if bits is None:
        raise InvalidCheckpoint(reason(Code.FORMAT_MISSING_FIELD, "AWQ config has neither 'bits' nor 'w_bit'",
                                       file=file, where=prefix or "/", hint="AutoAWQ writes bits (4)"))
    group = raw.group_size if raw.group_size is not None else raw.q_group_size
    version = (raw.format or raw.checkpoint_format or raw.version or "gemm").lower()
    if (raw.backend or "").lower() == "llm-awq":
        version = "llm-awq"
    layout = LAYOUTS.get(version)
    if layout is None:
        findings.append(reason(Code.FORMAT_UNKNOWN_VALUE, f"unknown AWQ version {version!r}",
                               file=file, where=pointer(prefix, "version"),
                               hint="AWQ versions: gemm, gemv, gemv_fast, marlin"))
    zero_point = raw.zero_point if raw.zero_point is not None else (not raw.sym if raw.sym is not None else True)
    sym = not zero_point
    # Symmetric GEMM exports still store a constant zero of 2^(b-1); only marlin has no qzeros.
    zero = ZeroPoint.NONE if layout is Layout.AWQ_MARLIN else ZeroPoint.TRUE
    label = f"awq int{bits} {group_label(group)} {'sym' if sym else 'asym'} ({version})"
    scheme = weight_only_scheme(bits) if layout is Layout.AWQ_GEMM else None
    weight = int_weight(bits, group, symmetric=sym, zero_point=zero, layout=layout or Layout.AWQ_GEMM,
                        scale_dtype="float16")
    rules: list[Rule] = []
    if raw.modules_to_not_convert:
        rules.append(Rule(match=Matcher(kind=MatchKind.SUBSTRING, patterns=tuple(raw.modules_to_not_convert)),
                          quant=None, origin=pointer(prefix, "modules_to_not_convert")))
    if not raw.lm_head:
        # AutoAWQ never quantizes lm_head; GPTQModel's AWQ does only with lm_head: true.
        rules.append(Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("lm_head",)), quant=None,
                          origin=pointer(prefix, "lm_head")))
    return CheckpointDescription(
        format=FormatFamily.AWQ, source=source, producer_version=raw.autoround_version,
        rules=tuple(rules), default=QuantSpec(scheme=scheme, label=label, weight=weight),
        extras=extras_of(raw, ("bits", "w_bit", "group_size", "q_group_size", "zero_point", "version",
                             "modules_to_not_convert", "format", "checkpoint_format", "sym", "lm_head")),
        findings=tuple(findings),
    )


def read(data: Any, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Parse and normalise an AWQ config given as decoded JSON."""
    return normalise(parse_raw(AwqConfig, data, file=file, prefix=prefix), file=file, source=source, prefix=prefix)
