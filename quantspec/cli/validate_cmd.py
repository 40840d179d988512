"""``quantspec validate DIR [--json] [--tensors] [--fix]``: check a checkpoint's quantization description
(and, with ``--tensors``, the values of its scales, offsets and group indices).

Reports every problem at once, each with its code, file, JSON pointer and hint. Exit codes:
0 clean (notes only), 1 findings (schema errors, unsupported formats, disagreements, unknown
values), 2 unreadable input (missing folder, invalid JSON, non-UTF-8, duplicate keys, huge
files, links leaving the folder). A Diffusers pipeline is validated component by component.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quantspec.cli.common import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, write_out
from quantspec.errors import Code, QuantspecError, Reason
from quantspec.formats import pipeline_components, read_description
from quantspec.formats.detect import require_dir
from quantspec.formats.schema_check import schema_reasons

#: Findings that do not make validation fail.
INFORMATIONAL = frozenset({Code.FORMAT_NOTE})


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand."""
    p = sub.add_parser("validate", help="validate a checkpoint's quantization description",
                       description="Detect and validate the quantization description of a model folder "
                                   "(exit 0 clean, 1 findings, 2 unreadable input).")
    p.add_argument("model_dir", metavar="DIR", help="model folder (or Diffusers pipeline folder)")
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    p.add_argument("--tensors", action="store_true",
                   help="also check the values of every scale, offset and group-index tensor (NaN, zero or "
                        "negative scales, E8M0 0xFF, offsets out of range), reading only those tensors")
    p.add_argument("--fix", action="store_true",
                   help="make the mechanical repairs first (rename quant_model_description_<type>.json, move a "
                        "shadowing quantization_config out of config.json), keeping a backup; weights are "
                        "never touched")
    p.set_defaults(func=_run)


def validate_dir(model_dir: Path, *, tensors: bool = False) -> dict[str, Any]:
    """Validate one model folder; a JSON-able report with ``summary``, ``reasons`` and ``status``
    (``tensors``: also the values of scales, offsets and group indices, and ``tensors`` counts)."""
    scan: dict[str, Any] | None = None
    value_reasons: list[Reason] = []
    if tensors:
        from quantspec.tensor_values import scan_values

        try:
            found = scan_values(model_dir)
            value_reasons = list(found.reasons)
            scan = {"checked": found.checked, "bytes_read": found.bytes_read, "skipped": found.skipped}
        except QuantspecError as exc:
            value_reasons = list(exc.reasons)
    try:
        desc = read_description(model_dir)
    except QuantspecError as exc:
        reasons = [*exc.reasons, *value_reasons]
        return {"path": str(model_dir), "summary": None, "reasons": reasons, "status": _status(reasons),
                "tensors": scan}
    reasons = [*desc.findings, *schema_reasons(model_dir, desc), *value_reasons]
    return {"path": str(model_dir), "summary": desc.summary(), "reasons": reasons, "status": _status(reasons),
            "tensors": scan}


def _status(reasons: list[Reason]) -> int:
    if any(r.code.value.startswith("input.") for r in reasons):
        return EXIT_INVALID
    if any(r.code not in INFORMATIONAL for r in reasons):
        return EXIT_FINDINGS
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    root = require_dir(Path(args.model_dir))
    components = pipeline_components(root)
    targets = list(components.values()) if components else [root]
    if args.fix:
        _fix(targets, quiet=args.json)
    reports = [validate_dir(t, tensors=args.tensors) for t in targets]
    status: int = max(int(r["status"]) for r in reports)
    if args.json:
        doc = {
            "path": str(root),
            "pipeline": bool(components),
            "status": status,
            "results": [{**r, "reasons": [x.model_dump(mode="json") for x in r["reasons"]]} for r in reports],
        }
        write_out(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return status
    for r in reports:
        write_out(_render(r))
    return status


def _fix(targets: list[Path], *, quiet: bool) -> None:
    from quantspec.repair import apply_repairs, find_repairs

    for target in targets:
        repairs = find_repairs(target)
        backup = apply_repairs(target, repairs)
        if not quiet:
            for r in repairs:
                write_out(f"fixed: {r.render()}\n")
            if backup is not None:
                write_out(f"backup of the changed files: {backup}\n")


def _render(report: dict[str, Any]) -> str:
    summary = report["summary"]
    lines = [f"{report['path']}:"]
    if summary is not None:
        rules = ", ".join(f"{k} x{v}" for k, v in summary["rules"].items()) or "nothing quantized"
        lines.append(f"  format {summary['format']} from {summary['source']}: {rules}")
    if report.get("tensors"):
        t = report["tensors"]
        lines.append(f"  tensors: {t['skipped']}" if t["skipped"] else
                     f"  tensors: {t['checked']} scale/offset/index tensors checked ({t['bytes_read']} bytes read)")
    for r in report["reasons"]:
        kind = "note" if r.code in INFORMATIONAL else "error" if report["status"] == EXIT_INVALID else "finding"
        lines.append(f"  {kind}: {r.render()}")
    verdict = {EXIT_OK: "valid", EXIT_FINDINGS: "findings", EXIT_INVALID: "unreadable"}[report["status"]]
    lines.append(f"  result: {verdict}")
    return "\n".join(lines) + "\n"
