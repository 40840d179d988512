"""``quantspec plan DIR --target a2|a3|a5``: dry-run a checkpoint against the support matrix.

Exit 0 when every (shown) layer is accepted, 1 when any is rejected, 2 for invalid input.
Reads headers and descriptions only; never imports torch.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from quantspec.cli.common import EXIT_FINDINGS, EXIT_OK, print_reasons, write_out
from quantspec.errors import Code, InvalidInput, reason
from quantspec.vocab import NpuGen


def register(sub: Any) -> None:
    """Add the ``plan`` subcommand."""
    p = sub.add_parser(
        "plan", help="plan a checkpoint for an Ascend generation (metadata only)",
        description="Resolve every layer of a checkpoint to an executable NPU scheme, or reject it with all "
                    "its reasons, before any weight is read.",
        epilog="exit codes: 0 all layers accepted, 1 some rejected, 2 invalid input or usage",
    )
    p.add_argument("model_dir", metavar="DIR", help="model folder (or Diffusers pipeline folder)")
    p.add_argument("--target", required=True, type=NpuGen, choices=list(NpuGen), help="NPU generation")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel size (default 1)")
    p.add_argument("--ep", type=int, default=1,
                   help="expert-parallel size: routed experts placed whole over this many ranks (default 1)")
    p.add_argument("--max-tokens", type=int, help="KV-cache tokens per rank for the memory check (default 32768)")
    p.add_argument("--device", help="device SKU whose memory is the capacity (910B1..910B4, 910_93)")
    p.add_argument("--device-memory", type=float, metavar="GIB", help="device memory per rank in GiB (overrides)")
    p.add_argument("--allow-untested", action="store_true",
                   help="accept untested and in-progress matrix cells (recorded in the plan)")
    p.add_argument("--quantization", help="online quantization of a float checkpoint (mxfp8), or the format name")
    p.add_argument("--producer-fix", action="append", default=[], metavar="DEFECT",
                   help="repair a known producer defect instead of rejecting it (repeatable; recorded in the plan)")
    p.add_argument("--format", dest="fmt", choices=["table", "json", "md"], default="table")
    p.add_argument("--layer", metavar="REGEX", help="show only layers whose name matches (re.search)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from quantspec.plan import plan
    from quantspec.plan.model import summarize
    from quantspec.plan.render import rejected_count, render_markdown, render_table

    layer_re = None
    if args.layer:
        try:
            layer_re = re.compile(args.layer)
        except re.error as exc:
            raise InvalidInput(reason(Code.USAGE, f"--layer: invalid regular expression: {exc}")) from None
    result = plan(args.model_dir, target=args.target, tp=args.tp, ep=args.ep, max_tokens=args.max_tokens,
                  device=args.device, device_memory=args.device_memory, allow_untested=args.allow_untested,
                  quantization=args.quantization, producer_fixes=args.producer_fix)
    if layer_re is not None:
        shown = tuple(layer for layer in result.layers if layer_re.search(layer.name))
        result = result.model_copy(update={"layers": shown, "summary": summarize(shown)})
    if args.fmt == "json":
        write_out(result.model_dump_json(indent=2) + "\n")
    elif args.fmt == "md":
        write_out(render_markdown(result, args.model_dir))
    else:
        write_out(render_table(result, args.model_dir))
    if result.findings and args.fmt == "table":
        print_reasons(result.findings, prefix="note")
    if result.rejections and args.fmt == "table":
        print_reasons(result.rejections, prefix="rejected")
    return EXIT_FINDINGS if rejected_count(result) or result.rejections else EXIT_OK
