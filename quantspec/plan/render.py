"""Human renderings of a :class:`Plan`: a grouped text table and Markdown.

Repeated layers are grouped: layer indices are replaced by ``*`` (61 identical decoder layers
read as one row with a count) and layers group when their kind, status, scheme, executable
and reason/warning codes agree. Details list each group's reasons once, then a summary by
scheme and status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from quantspec.errors import Reason
from quantspec.plan.model import LayerStatus, Plan, PlannedLayer
from quantspec.vocab import LayerKind

_INDEX_RE = re.compile(r"\.\d+(?=\.|$)")


def pattern(name: str) -> str:
    """Layer name with its numeric components replaced by ``*``."""
    return _INDEX_RE.sub(".*", name)


@dataclass
class Group:
    """Layers that read as one row."""

    pattern: str
    first: PlannedLayer
    count: int = 0
    members: list[PlannedLayer] = field(default_factory=list)


def group_layers(layers: tuple[PlannedLayer, ...] | list[PlannedLayer]) -> list[Group]:
    """Group layers by name pattern and outcome, in order of first appearance."""
    groups: dict[tuple[object, ...], Group] = {}
    for layer in layers:
        pat = pattern(layer.name)
        key = (pat, layer.kind, layer.status, layer.label, layer.executable,
               tuple(r.code for r in layer.reasons), tuple(w.code for w in layer.warnings))
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(pat, layer)
        g.count += 1
        g.members.append(layer)
    return list(groups.values())


def _note(layer: PlannedLayer) -> str:
    if layer.reasons:
        more = f" (+{len(layer.reasons) - 1} more)" if len(layer.reasons) > 1 else ""
        return layer.reasons[0].message + more
    if layer.warnings:
        return f"{len(layer.warnings)} warning(s): {layer.warnings[0].message}"
    return ""


def _header(plan: Plan, model: str) -> list[str]:
    policy = "supported + untested + in progress (--allow-untested)" if plan.policy.allow_untested else "supported only"
    comps = f", components: {', '.join(c.name for c in plan.components)}" if len(plan.components) > 1 else ""
    ep = f", ep {plan.ep}" if plan.ep > 1 else ""
    return [
        f"plan for {model}: {plan.format.value} ({plan.source}), {plan.domain.value}, model dtype "
        f"{plan.model_dtype or 'unknown'}{comps}",
        f"target {plan.target.value}, tp {plan.tp}{ep}, support matrix {plan.matrix_version}, policy: {policy}",
    ]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _details(groups: list[Group], *, md: bool) -> list[str]:
    out: list[str] = []
    for title, attr in (("Rejections", "reasons"), ("Warnings", "warnings")):
        items: list[tuple[Group, tuple[Reason, ...]]] = [
            (g, getattr(g.first, attr)) for g in groups if getattr(g.first, attr)]
        if not items:
            continue
        out += ["", f"## {title}" if md else f"{title}:"]
        for g, reasons in items:
            where = f"{g.pattern} (x{g.count})" if g.count > 1 else g.first.name
            if g.first.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2):  # both groups share the module name
                where = f"{where} {g.first.kind.value}"
            out.append(f"- `{where}`" if md else f"  {where}")
            out += [_reason_line(r, md) for r in reasons]
    return out


def _reason_line(r: Reason, md: bool) -> str:
    hint = f" (hint: {r.hint})" if r.hint else ""
    return f"  - [{r.code.value}] {r.message}{hint}" if md else f"    [{r.code.value}] {r.message}{hint}"


def _summary(plan: Plan, md: bool) -> list[str]:
    s = plan.summary
    rows = [["SCHEME", "ACCEPTED", "REJECTED"]]
    rows += [[label, str(c.accepted), str(c.rejected)] for label, c in s.by_scheme.items()]
    rows.append(["total", str(s.accepted), str(s.rejected)])
    verdict = "all layers accepted" if s.rejected == 0 else f"{s.rejected} of {s.layers} layers rejected"
    tail = f"{verdict}; {s.warnings} warning(s); {s.bytes_after_load / 2**20:.1f} MiB after load (accepted layers)"
    if md:
        return ["", "## Summary", "", *_md_table(rows), "", tail]
    return ["", "Summary:", *("  " + line for line in _table(rows)), tail]


def _gib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**30:.1f}"


def _memory(plan: Plan, md: bool) -> list[str]:
    """Per-rank memory, ranks with identical figures on one row."""
    m = plan.memory
    if m is None:
        return []
    rows = [["RANKS", "WEIGHTS GiB", "KV GiB", "RESERVE GiB", "TOTAL GiB", "CAPACITY GiB", "HEADROOM GiB"]]
    groups: dict[tuple[int, int, int, int | None], list[int]] = {}
    for r in m.ranks:
        groups.setdefault((r.weights, r.kv_cache, r.total, r.headroom), []).append(r.rank)
    for (w, kv, total, head), ranks in groups.items():
        span = f"{ranks[0]}" if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]}" if ranks == list(
            range(ranks[0], ranks[-1] + 1)) else ",".join(map(str, ranks))
        rows.append([span, _gib(w), _gib(kv), _gib(m.reserve), _gib(total), _gib(m.capacity), _gib(head)])
    verdict = {True: "fits", False: "does NOT fit", None: "fit not judged"}[m.fits]
    tail = (f"memory: {m.ranks_count} rank(s), {m.max_tokens} KV tokens per rank, {verdict}; {m.note}")
    if md:
        return ["", "## Memory per rank", "", *_md_table(rows), "", tail]
    return ["", "Memory per rank:", *("  " + line for line in _table(rows)), tail]


def _md_table(rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    return out


def _rows(groups: list[Group]) -> list[list[str]]:
    rows = [["LAYER", "KIND", "COUNT", "STATUS", "SCHEME", "EXECUTABLE", "NOTES"]]
    for g in groups:
        f = g.first
        rows.append([g.pattern if g.count > 1 else f.name, f.kind.value, str(g.count), f.status.value,
                     f.label or "-", f.executable or "-", _note(f)])
    return rows


def render_table(plan: Plan, model: str) -> str:
    """Grouped text table with rejection/warning details and a summary."""
    groups = group_layers(plan.layers)
    lines = [*_header(plan, model), ""]
    lines += _table(_rows(groups)) if plan.layers else ["(no layers)"]
    lines += _details(groups, md=False)
    lines += _summary(plan, md=False)
    lines += _memory(plan, md=False)
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan, model: str) -> str:
    """The same content as Markdown."""
    groups = group_layers(plan.layers)
    lines = [f"# Plan: {model}", "", *(f"- {h}" for h in _header(plan, model)), ""]
    lines += _md_table(_rows(groups)) if plan.layers else ["(no layers)"]
    lines += _details(groups, md=True)
    lines += _summary(plan, md=True)
    lines += _memory(plan, md=True)
    return "\n".join(lines) + "\n"


def rejected_count(plan: Plan) -> int:
    """Number of rejected layers."""
    return sum(1 for layer in plan.layers if layer.status is LayerStatus.REJECTED)
