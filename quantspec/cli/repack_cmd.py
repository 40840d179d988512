"""``quantspec repack wan``: convert msModelSlim's Wan-format Wan2.2 export to Diffusers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from quantspec.cli.common import EXIT_OK, write_out
from quantspec.repack import WanModelType, repack_wan


def register(sub: Any) -> None:
    """Add the ``repack`` subcommand and its ``wan`` action."""
    p = sub.add_parser("repack", help="convert a producer's checkpoint layout for the loaders",
                       description="Convert a quantized checkpoint's layout into the one the loaders expect.")
    p.set_defaults(func=lambda _args: p.error("choose an action: wan"))
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    wan = actions.add_parser(
        "wan", help="msModelSlim Wan-format Wan2.2 export -> Diffusers folder",
        description="Rename msModelSlim's Wan-format quantized transformer(s) to Diffusers names, "
                    "rename their quant_model_description.json alike, and copy the rest of the original "
                    "Diffusers checkpoint. The output is written to a temporary folder beside it and "
                    "renamed into place at the end.",
    )
    wan.add_argument("--model-type", required=True, type=WanModelType, choices=list(WanModelType),
                     metavar="{" + ",".join(t.value for t in WanModelType) + "}")
    wan.add_argument("--original-model-path", required=True, type=Path,
                     help="the original Hugging Face *-Diffusers checkpoint folder")
    wan.add_argument("--quant-path", required=True, type=Path, help="msModelSlim's --save_path folder")
    wan.add_argument("--output-path", required=True, type=Path, help="folder to create")
    wan.add_argument("--force", action="store_true", help="replace an existing output folder")
    wan.set_defaults(func=_wan)


def _wan(args: argparse.Namespace) -> int:
    result = repack_wan(args.model_type, args.original_model_path, args.quant_path, args.output_path,
                        force=args.force)
    write_out(f"repacked {result.model_type.value} into {result.output}\n")
    for c in result.components:
        write_out(f"  {c.component}: {c.tensors} tensors, {c.data_bytes} bytes from {c.source}\n")
    write_out(f"  copied from the original: {', '.join(result.copied) or 'nothing'}\n")
    return EXIT_OK
