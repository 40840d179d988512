"""Renderings of the support matrix: the generated Markdown docs, text tables and JSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from quantspec.matrix.model import MatrixEntry, StatusByGen, SupportMatrix
from quantspec.vocab import FormatFamily, MatrixLayer, NpuGen, Status

#: The seed's cell symbols.
SYMBOL: dict[Status, str] = {
    Status.SUPPORTED: "✓",
    Status.UNSUPPORTED: "✗",
    Status.UNTESTED: "TBD",
    Status.IN_PROGRESS: "WIP",
}

FAMILY_TITLE: dict[FormatFamily, str] = {
    FormatFamily.MODELSLIM: "ModelSlim on Ascend",
    FormatFamily.AWQ: "AWQ on Ascend",
    FormatFamily.GPTQ: "GPTQ on Ascend",
    FormatFamily.AUTO_ROUND: "Auto-round on Ascend",
    FormatFamily.COMPRESSED_TENSORS: "Compressed-tensors (LLM Compressor) on Ascend",
    FormatFamily.GGUF: "GGUF on Ascend",
    FormatFamily.MXFP8_ONLINE: "Online MXFP8 on Ascend",
}

LAYER_TITLE: dict[MatrixLayer, str] = {
    MatrixLayer.LINEAR: "Linear",
    MatrixLayer.MOE: "MoE",
    MatrixLayer.EMBEDDING: "Embedding",
    MatrixLayer.ATTENTION: "Attention / KV cache",
}

GENERATED_NOTE = (
    "<!-- Generated from support_matrix.yaml by `quantspec docs`. Do not edit by hand: "
    "edit the YAML and regenerate (a test fails when this file is stale). -->"
)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = [_row(header), _row("---" for _ in header)]
    out.extend(_row(r) for r in rows)
    return out


def diffusion_cell(entry: MatrixEntry) -> str:
    """The ModelSlim table's "Diffusion models" cell: where the scheme runs for diffusion."""
    if entry.diffusion is None:
        return SYMBOL[Status.UNSUPPORTED]
    parts = []
    for status in (Status.SUPPORTED, Status.IN_PROGRESS, Status.UNTESTED):
        gens = [g.value.upper() for g in NpuGen if entry.diffusion.status.get(g) is status]
        if gens:
            parts.append(f"{SYMBOL[status]} ({', '.join(gens)})")
    return ", ".join(parts) or SYMBOL[Status.UNSUPPORTED]


def _a2a3(status: StatusByGen) -> str:
    if status.a2 is status.a3:
        return SYMBOL[status.a2]
    return f"A2 {SYMBOL[status.a2]} / A3 {SYMBOL[status.a3]}"


def _family_table(entries: Sequence[MatrixEntry], family: FormatFamily) -> list[str]:
    if family is FormatFamily.MODELSLIM:
        header = [
            "Quantization scheme", "quant_type in JSON", "Scheme class", "Layer type",
            "A2 Supported", "A3 Supported", "A5 Supported", "Diffusion models",
        ]
        rows = [
            [
                e.label, f"`{e.quant_type}`" if e.quant_type else "", e.scheme_class or "",
                LAYER_TITLE[e.layer], *(SYMBOL[e.status.get(g)] for g in NpuGen), diffusion_cell(e),
            ]
            for e in entries
        ]
    else:
        header = ["Quantization scheme", "Layer type", "A2 Supported", "A3 Supported", "A5 Supported"]
        rows = [[e.label, LAYER_TITLE[e.layer], *(SYMBOL[e.status.get(g)] for g in NpuGen)] for e in entries]
    return _table(header, rows)


def _diffusion_table(matrix: SupportMatrix) -> list[str]:
    header = ["Quantization method", "quant_type in JSON", "Scheme class", "Mode",
              "A2/A3 Supported", "A5 Supported", "Trigger"]
    rows = []
    for e in matrix.entries:
        if e.diffusion is None:
            continue
        rows.append([
            e.label if e.family is not FormatFamily.MODELSLIM or e.scheme.value != "w8a8_mxfp8"
            else "MXFP8 (W8A8)",
            f"`{e.quant_type}`" if e.quant_type else "",
            e.scheme_class or "",
            e.diffusion.mode.value.capitalize(),
            _a2a3(e.diffusion.status),
            SYMBOL[e.diffusion.status.a5],
            e.diffusion.trigger,
        ])
    # The seed lists online before offline, MXFP8 first.
    rows.sort(key=lambda r: (not r[0].startswith("MXFP8"), r[3] != "Online"))
    return _table(header, rows)


def _details(matrix: SupportMatrix) -> list[str]:
    out: list[str] = []
    for e in matrix.entries:
        lines: list[str] = []
        if e.kernels:
            lines.append("- kernels: " + ", ".join(f"`{k}`" for k in e.kernels))
        for r in e.requirements:
            lines.append(f"- requires {r.render()} (source: {r.source})")
        for c in e.constraints:
            params = ", ".join(f"{k}={v}" for k, v in c.params.model_dump(mode="json", exclude_unset=True).items())
            lines.append(f"- constraint `{c.id.value}`{f' ({params})' if params else ''}: {c.text} "
                         f"(source: {c.source})")
        if e.notes:
            lines.append(f"- note: {e.notes}")
        lines.append("- sources: " + ", ".join(e.sources))
        out.extend([f"#### `{e.key}`", "", *lines, ""])
    return out


def render_markdown(matrix: SupportMatrix) -> str:
    """The whole ``docs/support_matrix.md`` page."""
    legend = (
        f"Legend: {SYMBOL[Status.SUPPORTED]} supported, {SYMBOL[Status.UNSUPPORTED]} unsupported, "
        f"{SYMBOL[Status.UNTESTED]} untested (a code path exists, not validated on that generation), "
        f"{SYMBOL[Status.IN_PROGRESS]} in progress. A2 = Atlas A2 / 910B, A3 = Atlas A3 / 910C, "
        "A5 = Ascend 950."
    )
    out = [
        GENERATED_NOTE, "",
        "# Quantization support on Ascend NPUs", "",
        f"Matrix version **{matrix.matrix_version}** (schema {matrix.schema_version}).", "",
        legend, "",
        "The planner rejects `untested` and `in_progress` cells unless `--allow-untested` is given, "
        "and records that choice in the plan.", "",
    ]
    for family, title in FAMILY_TITLE.items():
        entries = matrix.select(family=family)
        if not entries:
            continue
        out.extend([f"## {title}", "", *_family_table(entries, family), ""])
        if family is FormatFamily.GGUF:
            out.extend([
                "Note: on Ascend, GGUF weights are pre-dequantized to FP16/BF16 during model loading. "
                "Every GGUF quantization type therefore loads, with no runtime memory saving.", "",
            ])
    out.extend(["## Diffusion models on Ascend", "", *_diffusion_table(matrix), ""])
    reqs = sorted({r.render() for e in matrix.entries if e.diffusion for r in e.requirements})
    if reqs:
        out.extend([f"Requirements for MXFP8: {', '.join(reqs)}.", ""])
    out.extend(["## Requirements, constraints and sources per entry", "", *_details(matrix)])
    out.extend(["## Sources", ""])
    out.extend(f"- `{k}`: {s.title} (`{s.ref}`)" for k, s in matrix.sources.items())
    out.extend(["", "## Changelog", ""])
    for item in matrix.changelog:
        out.append(f"- **{item.version}** ({item.date})")
        out.extend(f"  - {c}" for c in item.changes)
    return "\n".join(out) + "\n"


def entry_json(entry: MatrixEntry, gens: Sequence[NpuGen]) -> dict[str, Any]:
    """JSON object of one entry, restricted to ``gens``."""
    data: dict[str, Any] = {
        "key": entry.key,
        "family": entry.family.value,
        "scheme": entry.scheme.value,
        "layer": entry.layer.value,
        "label": entry.label,
        "quant_type": entry.quant_type,
        "scheme_class": entry.scheme_class,
        "status": {g.value: entry.status.get(g).value for g in gens},
    }
    if entry.diffusion is not None:
        data["diffusion"] = {
            "status": {g.value: entry.diffusion.status.get(g).value for g in gens},
            "mode": entry.diffusion.mode.value,
            "trigger": entry.diffusion.trigger,
        }
    data["kernels"] = list(entry.kernels)
    data["requirements"] = [r.render() for r in entry.requirements]
    data["constraints"] = [c.id.value for c in entry.constraints]
    return data


def render_text(entries: Sequence[MatrixEntry], gens: Sequence[NpuGen]) -> str:
    """Aligned plain-text table for terminals."""
    header = ["family", "scheme", "layer", *[g.value.upper() for g in gens], "diffusion"]
    rows = [
        [e.family.value, e.scheme.value, e.layer.value, *[e.status.get(g).value for g in gens],
         "-" if e.diffusion is None else ",".join(
             f"{g.value}:{e.diffusion.status.get(g).value}" for g in gens)]
        for e in entries
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines) + "\n"


def render_entries_markdown(entries: Sequence[MatrixEntry], gens: Sequence[NpuGen]) -> str:
    """A single Markdown table of the selected entries."""
    header = ["Family", "Scheme", "Layer type", *[f"{g.value.upper()} Supported" for g in gens],
              "Diffusion models"]
    rows = [[FAMILY_TITLE.get(e.family, e.family.value).removesuffix(" on Ascend"), e.label,
             LAYER_TITLE[e.layer], *[SYMBOL[e.status.get(g)] for g in gens], diffusion_cell(e)]
            for e in entries]
    return "\n".join(_table(header, rows)) + "\n"
