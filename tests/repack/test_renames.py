"""The Wan → Diffusers rename table and its one-pass segment semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.repack.renames import (
    WAN_TO_DIFFUSERS_RENAMES,
    _compile,
    rename,
    rename_all,
    rename_traced,
    render_rename_table,
)
from tests.repack.wan_fixtures import wan_export

REPO = Path(__file__).resolve().parents[2]

#: The reference (diffusers' convert_wan_to_diffusers.py, as SGLang's wan_repack.py uses it):
#: sequential substring replacement, a placeholder for the norm swap, chained img renames.
_REFERENCE = {
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.modulation": "scale_shift_table",
    "head.head": "proj_out",
    "modulation": "scale_shift_table",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
    "norm2": "norm__placeholder",
    "norm3": "norm2",
    "norm__placeholder": "norm3",
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
    "img_emb.emb_pos": "condition_embedder.image_embedder.pos_embed",
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "attn2.to_k_img": "attn2.add_k_proj",
    "attn2.to_v_img": "attn2.add_v_proj",
    "attn2.norm_k_img": "attn2.norm_added_k",
    ".linear.": ".",
    ".div.": ".",
}


def _reference_rename(name: str) -> str:
    for old, new in _REFERENCE.items():
        name = name.replace(old, new)
    return name


def _realistic_keys() -> list[str]:
    """Every tensor of an I2V export (W8A8_DYNAMIC), plus FLF2V and MXFP4-wrapper names."""
    tensors, _ = wan_export("W8A8_DYNAMIC", i2v=True)
    extra = [
        "img_emb.emb_pos",
        "blocks.0.self_attn.q.linear.weight",
        "blocks.0.self_attn.q.linear.weight_scale",
        "blocks.0.ffn.2.div.mul_scale",
        "blocks.1.cross_attn.o.linear.weight",
    ]
    return sorted(tensors) + extra


EXPECTED = {
    "patch_embedding.weight": "patch_embedding.weight",
    "time_embedding.0.weight": "condition_embedder.time_embedder.linear_1.weight",
    "time_embedding.2.bias": "condition_embedder.time_embedder.linear_2.bias",
    "text_embedding.0.weight": "condition_embedder.text_embedder.linear_1.weight",
    "text_embedding.2.weight": "condition_embedder.text_embedder.linear_2.weight",
    "time_projection.1.weight": "condition_embedder.time_proj.weight",
    "head.modulation": "scale_shift_table",
    "head.head.weight": "proj_out.weight",
    "blocks.0.modulation": "blocks.0.scale_shift_table",
    "blocks.0.self_attn.q.weight": "blocks.0.attn1.to_q.weight",
    "blocks.0.self_attn.q.weight_scale": "blocks.0.attn1.to_q.weight_scale",
    "blocks.1.self_attn.o.weight_offset": "blocks.1.attn1.to_out.0.weight_offset",
    "blocks.0.self_attn.norm_k.weight": "blocks.0.attn1.norm_k.weight",
    "blocks.0.cross_attn.v.weight": "blocks.0.attn2.to_v.weight",
    "blocks.0.cross_attn.norm_q.weight": "blocks.0.attn2.norm_q.weight",
    "blocks.0.cross_attn.k_img.weight": "blocks.0.attn2.add_k_proj.weight",
    "blocks.0.cross_attn.v_img.weight_scale": "blocks.0.attn2.add_v_proj.weight_scale",
    "blocks.0.cross_attn.norm_k_img.weight": "blocks.0.attn2.norm_added_k.weight",
    "blocks.0.norm3.weight": "blocks.0.norm2.weight",
    "blocks.0.norm2.weight": "blocks.0.norm3.weight",
    "blocks.1.ffn.0.weight": "blocks.1.ffn.net.0.proj.weight",
    "blocks.1.ffn.2.weight_scale": "blocks.1.ffn.net.2.weight_scale",
    "img_emb.proj.0.weight": "condition_embedder.image_embedder.norm1.weight",
    "img_emb.proj.1.weight": "condition_embedder.image_embedder.ff.net.0.proj.weight",
    "img_emb.proj.3.bias": "condition_embedder.image_embedder.ff.net.2.bias",
    "img_emb.proj.4.weight": "condition_embedder.image_embedder.norm2.weight",
    "img_emb.emb_pos": "condition_embedder.image_embedder.pos_embed",
    "blocks.0.self_attn.q.linear.weight": "blocks.0.attn1.to_q.weight",
    "blocks.0.ffn.2.div.mul_scale": "blocks.0.ffn.net.2.mul_scale",
}


@pytest.mark.parametrize(("old", "new"), sorted(EXPECTED.items()))
def test_exact_diffusers_names(old: str, new: str) -> None:
    assert rename(old) == new


def test_every_rule_is_exercised_by_realistic_keys() -> None:
    used = {i for key in [*_realistic_keys(), "blocks.0.norm2.weight"] for i in rename_traced(key)[1]}
    unused = [WAN_TO_DIFFUSERS_RENAMES[i] for i in range(len(WAN_TO_DIFFUSERS_RENAMES)) if i not in used]
    assert unused == []


def test_agrees_with_the_reference_substring_semantics() -> None:
    keys = [*_realistic_keys(), "blocks.0.norm2.weight"]
    assert {k: rename(k) for k in keys} == {k: _reference_rename(k) for k in keys}


def test_injective_on_realistic_keys() -> None:
    keys = _realistic_keys()[:-4]  # the wrapper names alias their plain forms on purpose
    mapping = rename_all(keys)
    assert len(set(mapping.values())) == len(keys)


def test_collisions_are_all_reported() -> None:
    keys = ["head.modulation", "scale_shift_table", "blocks.0.ffn.0.weight", "blocks.0.ffn.0.linear.weight"]
    with pytest.raises(InvalidCheckpoint) as info:
        rename_all(keys, file="m")
    reasons = info.value.reasons
    assert [r.code for r in reasons] == [Code.REPACK_RENAME_COLLISION] * 2
    assert {r.where for r in reasons} == {"scale_shift_table", "blocks.0.ffn.net.0.proj.weight"}
    assert "'head.modulation', 'scale_shift_table'" in reasons[0].message


@pytest.mark.parametrize("name", ["linear.weight", "blocks.0.linear", "div", "blocks.0.self_attn.k_img2.weight",
                                  "blocks.0.ffn.01.weight", "blocks.0.norm21.weight", "headx.head.weight"])
def test_segments_match_whole_and_removals_need_both_neighbours(name: str) -> None:
    assert rename(name) == name


def test_ambiguous_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicated"):
        _compile([("a.b", "c"), ("a.b", "d")])
    with pytest.raises(ValueError, match="empty segment"):
        _compile([("a..b", "c")])


def test_docs_embed_the_generated_table() -> None:
    doc = (REPO / "docs" / "repack.md").read_text(encoding="utf-8")
    assert render_rename_table() in doc, (
        "docs/repack.md is stale: paste the output of "
        "`python -c 'from quantspec.repack.renames import render_rename_table as r; print(r())'`"
    )
