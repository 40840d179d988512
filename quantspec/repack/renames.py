"""Wan → Diffusers tensor-name renames, as data, with well-defined matching semantics.

The table mirrors diffusers' ``convert_wan_to_diffusers.py`` (``TRANSFORMER_KEYS_RENAME_DICT``)
plus SGLang ``wan_repack.py``'s two wrapper removals (``.linear.``, ``.div.``). The
reference applies its table by *sequential substring replacement*, which makes the result
depend on the order of the rules, needs a placeholder to swap ``norm2``/``norm3`` and
chains renames (``cross_attn.k_img`` → ``attn2.to_k_img`` → ``attn2.add_k_proj``). Here a
rule is a pair of dot-separated segment sequences, applied in **one left-to-right pass**:

1. a name is split at dots into segments;
2. at each position, the rule whose source segments match there is applied; when several
   match, the longest source wins (``head.modulation`` over ``modulation``); the table has
   no two rules with the same source, so the choice is unique;
3. the rule's target segments are emitted and the scan resumes *after* the matched
   segments: emitted text is never matched again, so a swap is just two rules and no rule
   can feed another;
4. a rule with an empty target (a wrapper removal) matches only with at least one segment
   before and after it, like the reference's ``".linear." -> "."``.

Segments match whole, so ``self_attn.k`` never touches ``self_attn.k_img``; the image
projections therefore have direct rules. ``tests/repack/test_renames.py`` checks that these
semantics agree with the reference's substring semantics on a realistic Wan key set.
"""

from __future__ import annotations

from collections.abc import Iterable

from quantspec.errors import Code, InvalidCheckpoint, Reason, reason

#: ``(wan_name, diffusers_name)`` pairs, dot-separated; an empty target drops the segments.
WAN_TO_DIFFUSERS_RENAMES: tuple[tuple[str, str], ...] = (
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("head.modulation", "scale_shift_table"),
    ("head.head", "proj_out"),
    ("modulation", "scale_shift_table"),
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
    # Wan runs its block norms as norm1, norm3, norm2; Diffusers names them in run order.
    ("norm2", "norm3"),
    ("norm3", "norm2"),
    ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
    ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
    ("img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"),
    ("self_attn.q", "attn1.to_q"),
    ("self_attn.k", "attn1.to_k"),
    ("self_attn.v", "attn1.to_v"),
    ("self_attn.o", "attn1.to_out.0"),
    ("self_attn.norm_q", "attn1.norm_q"),
    ("self_attn.norm_k", "attn1.norm_k"),
    ("cross_attn.q", "attn2.to_q"),
    ("cross_attn.k", "attn2.to_k"),
    ("cross_attn.v", "attn2.to_v"),
    ("cross_attn.o", "attn2.to_out.0"),
    ("cross_attn.norm_q", "attn2.norm_q"),
    ("cross_attn.norm_k", "attn2.norm_k"),
    # I2V image conditioning (the reference reaches these through attn2.to_k_img & co.).
    ("cross_attn.k_img", "attn2.add_k_proj"),
    ("cross_attn.v_img", "attn2.add_v_proj"),
    ("cross_attn.norm_k_img", "attn2.norm_added_k"),
    # msModelSlim wrappers: MXFP4 exports wrap Linear in `.linear.`; smooth-quant `div.mul_scale`.
    ("linear", ""),
    ("div", ""),
)

_Rule = tuple[int, tuple[str, ...], tuple[str, ...]]


def _compile(table: Iterable[tuple[str, str]]) -> dict[str, list[_Rule]]:
    """Index rules by first source segment, longest first; refuse an ambiguous table."""
    index: dict[str, list[_Rule]] = {}
    seen: set[str] = set()
    for i, (src, dst) in enumerate(table):
        src_parts = tuple(src.split("."))
        dst_parts = tuple(dst.split(".")) if dst else ()
        if src in seen or "" in src_parts or "" in dst_parts:
            raise ValueError(f"rename rule {i} ({src!r} -> {dst!r}) is duplicated or has an empty segment")
        seen.add(src)
        index.setdefault(src_parts[0], []).append((i, src_parts, dst_parts))
    for rules in index.values():
        rules.sort(key=lambda r: -len(r[1]))
    return index


_INDEX = _compile(WAN_TO_DIFFUSERS_RENAMES)


def rename_traced(name: str) -> tuple[str, tuple[int, ...]]:
    """Rename one tensor name; also return the indices of the rules applied, in order."""
    parts = name.split(".")
    out: list[str] = []
    used: list[int] = []
    pos = 0
    while pos < len(parts):
        for idx, src, dst in _INDEX.get(parts[pos], ()):
            end = pos + len(src)
            if tuple(parts[pos:end]) != src:
                continue
            if not dst and (pos == 0 or end >= len(parts)):
                continue
            out.extend(dst)
            used.append(idx)
            pos = end
            break
        else:
            out.append(parts[pos])
            pos += 1
    return ".".join(out), tuple(used)


def rename(name: str) -> str:
    """The Diffusers name of a Wan tensor (unchanged when no rule applies)."""
    return rename_traced(name)[0]


def rename_all(names: Iterable[str], *, file: str | None = None) -> dict[str, str]:
    """Map each name to its new name; raise when two names would get the same new name.

    Every collision is reported (code ``repack.rename_collision``), naming all its sources.
    """
    mapping: dict[str, str] = {}
    by_target: dict[str, list[str]] = {}
    for old in names:
        new = rename(old)
        mapping[old] = new
        by_target.setdefault(new, []).append(old)
    problems: list[Reason] = [
        reason(
            Code.REPACK_RENAME_COLLISION,
            f"{len(sources)} tensors would all be renamed to {target!r}: {', '.join(map(repr, sources))}",
            file=file,
            where=target,
            hint="the checkpoint holds both a name and its Diffusers form; repack only original Wan names",
        )
        for target, sources in by_target.items()
        if len(sources) > 1
    ]
    if problems:
        raise InvalidCheckpoint(problems)
    return mapping


def render_rename_table(table: Iterable[tuple[str, str]] = WAN_TO_DIFFUSERS_RENAMES) -> str:
    """The rename table as a Markdown table (``docs/repack.md`` embeds it; a test checks drift)."""
    lines = ["| Wan (msModelSlim) segments | Diffusers segments |", "|---|---|"]
    for src, dst in table:
        lines.append(f"| `{src}` | {f'`{dst}`' if dst else '*(removed)*'} |")
    return "\n".join(lines) + "\n"

