"""Resolution semantics of the format-neutral description."""

from __future__ import annotations

import pytest

from quantspec.description import CheckpointDescription, Matcher, QuantSpec, Rule, WeightQuant
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatchKind, SchemeId

W4 = QuantSpec(
    scheme=SchemeId.W4A16,
    label="int4 g128",
    weight=WeightQuant(element=ElementType.INT4, bits=4, granularity=Granularity.GROUP, group_size=128,
                       layout=Layout.GPTQ),
)


@pytest.mark.parametrize(
    ("kind", "pattern", "module", "cls", "hit"),
    [
        (MatchKind.EXACT, "lm_head", "lm_head", None, True),
        (MatchKind.EXACT, "lm_head", "model.lm_head", None, False),
        (MatchKind.SUBSTRING, "gate", "model.layers.0.mlp.gate_proj", None, True),
        (MatchKind.PREFIX, "model.layers", "model.layers.3.q", None, True),
        (MatchKind.SUFFIX, "o_proj", "model.layers.3.self_attn.o_proj", None, True),
        (MatchKind.REGEX_MATCH, r"layers\.1\.", "model.layers.1.x", None, False),  # anchored at the start
        (MatchKind.REGEX_SEARCH, r"layers\.1\.", "model.layers.1.x", None, True),
        (MatchKind.REGEX_FULLMATCH, r"model\.layers\.\d+", "model.layers.10", None, True),
        (MatchKind.REGEX_FULLMATCH, r"model\.layers\.\d", "model.layers.10", None, False),
        (MatchKind.CLASS_NAME, "Linear", "anything", "Linear", True),
        (MatchKind.CLASS_NAME, "Linear", "anything", "Embedding", False),
        (MatchKind.CLASS_NAME, "Linear", "anything", None, False),
    ],
)
def test_matcher_kinds(kind: MatchKind, pattern: str, module: str, cls: str | None, hit: bool) -> None:
    assert Matcher(kind=kind, patterns=(pattern,)).matches(module, cls) is hit
    assert Matcher(kind=kind, patterns=(pattern,), negate=True).matches(module, cls) is not hit


def _desc(**kw: object) -> CheckpointDescription:
    return CheckpointDescription(format=FormatFamily.GPTQ, source="config.json", **kw)  # type: ignore[arg-type]


def test_first_matching_rule_wins_then_default() -> None:
    d = _desc(
        rules=(
            Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("lm_head",)), quant=None, origin="/lm_head"),
            Rule(match=Matcher(kind=MatchKind.SUBSTRING, patterns=("head",)), quant=W4, origin="/x"),
        ),
        default=W4,
    )
    assert d.resolve("lm_head").quant is None
    assert d.resolve("lm_head").origin == "/lm_head"
    assert d.resolve("model.layers.0.q_proj").quant == W4
    assert d.resolve("model.layers.0.q_proj").origin == "default"
    # The default applies to Linear modules only.
    assert d.resolve("model.embed_tokens", "Embedding").quant is None


def test_requires_entry_reports_unmatched() -> None:
    d = _desc(requires_entry=True, default=W4)
    res = d.resolve("model.layers.0.q_proj")
    assert res.matched is False and res.quant is None


def test_description_is_frozen() -> None:
    d = _desc()
    with pytest.raises(Exception, match="frozen"):
        d.source = "x"  # type: ignore[misc]
