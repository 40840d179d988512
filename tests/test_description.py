"""Resolution semantics of the format-neutral description."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quantspec.formats
from quantspec.description import CheckpointDescription, Matcher, QuantSpec, Resolver, Rule, WeightQuant
from quantspec.formats import compressed_tensors, modelslim
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatchKind, SchemeId
from tests.formats.examples import load

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


# ---------------------------------------------------------------- the indexed Resolver

NAMES = ["a", "a.b", "a.b.c", "lm_head", "x.gate", "x.gate_proj", "m.1.q", "m.10.q"]
CLASSES = ("Linear", "Embedding", "Norm", None)
W8 = W4.model_copy(update={"label": "int8", "scheme": SchemeId.W8A16})
matchers = st.builds(
    Matcher,
    kind=st.sampled_from(list(MatchKind)),
    patterns=st.lists(st.sampled_from([*NAMES, "Linear", "gate", "m.1", r"m\.\d+", r".*\.q"]), min_size=1,
                      max_size=3).map(tuple),
    negate=st.booleans(),
)
rules = st.lists(st.tuples(matchers, st.sampled_from([None, W4, W8])), max_size=8).map(
    lambda ms: tuple(Rule(match=m, quant=q, origin=f"/{i}") for i, (m, q) in enumerate(ms)))


@settings(max_examples=300, deadline=None)
@given(rules, st.booleans(), st.sampled_from([None, W4]), st.sampled_from([("Linear",), ("Linear", "Embedding"), ()]))
def test_resolver_same_as_resolve(rs: tuple[Rule, ...], requires_entry: bool, default: QuantSpec | None,
                                  classes: tuple[str, ...]) -> None:
    desc = CheckpointDescription(format=FormatFamily.MODELSLIM, source="s", requires_entry=requires_entry,
                                 rules=rs, default=default, default_classes=classes)
    r = Resolver(desc)
    for name in NAMES:
        for cls in CLASSES:
            slow = desc.resolve(name, cls)
            assert r.resolve(name, cls) == slow
            assert r.quant_of(name, cls) == (slow.quant, slow.matched)
            assert desc.resolver().resolve(name, cls) == slow
        quants, unmatched = r.quants(NAMES, cls)
        assert quants == [desc.resolve(n, cls).quant for n in NAMES]
        assert unmatched == [n for n in NAMES if not desc.resolve(n, cls).matched]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from([None, W4, W8])), max_size=12),
       st.booleans(), st.sampled_from([None, W4]))
def test_resolver_exact_only_same_as_resolve(pairs: list[tuple[str, QuantSpec | None]], requires_entry: bool,
                                             default: QuantSpec | None) -> None:
    # the all-EXACT, one-pattern shape of ModelSlim / GGUF (the index's fast path), duplicates included
    rs = tuple(Rule(match=Matcher(kind=MatchKind.EXACT, patterns=(n,)), quant=q, origin=f"/{i}")
               for i, (n, q) in enumerate(pairs))
    desc = CheckpointDescription(format=FormatFamily.MODELSLIM, source="s", requires_entry=requires_entry,
                                 rules=rs, default=default)
    r = Resolver(desc)
    for name in NAMES:
        for cls in CLASSES:
            slow = desc.resolve(name, cls)
            assert r.resolve(name, cls) == slow
            assert r.quant_of(name, cls) == (slow.quant, slow.matched)
    quants, unmatched = r.quants(NAMES)
    assert quants == [desc.resolve(n).quant for n in NAMES]
    assert unmatched == [n for n in NAMES if not desc.resolve(n).matched]


def test_resolver_is_cached_and_not_part_of_the_model() -> None:
    desc = _desc(rules=(Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("a",)), quant=W4, origin="/a"),))
    plain = desc.model_copy()
    r = desc.resolver()
    assert desc.resolver() is r
    assert desc == plain and plain == desc and desc.model_dump() == plain.model_dump()
    assert desc.model_dump_json() == plain.model_dump_json()
    # a copy with other rules must not reuse the cached index
    other = desc.model_copy(update={"rules": ()})
    assert other.resolver() is not r and other.resolver().resolve("a") == other.resolve("a")
    assert quantspec.formats.Resolver is Resolver  # one implementation, re-exported by formats


def test_resolver_examples_agree() -> None:
    ct = compressed_tensors.read(load("ct_mixed_w4a8.json"), file="c", source="c")
    r = ct.resolver()
    for name in ("lm_head", "model.layers.0.mlp.gate", "model.layers.0.mlp.experts.3.up_proj",
                 "model.layers.0.mlp.shared_expert.down_proj", "model.layers.0.self_attn.o_proj"):
        assert r.resolve(name, "Linear") == ct.resolve(name, "Linear")


def test_resolver_large_modelslim_is_fast() -> None:
    d = {f"model.layers.{i}.mlp.experts.{e}.down_proj.weight": "W8A8_DYNAMIC" for i in range(40) for e in range(128)}
    desc = modelslim.read(d, file="q", source="q")
    r = desc.resolver()
    start = time.perf_counter()
    for key in d:
        assert r.resolve(key[: -len(".weight")]).matched
        assert r.quant_of(key[: -len(".weight")])[1]
    assert time.perf_counter() - start < 2.0
    assert not r.resolve("model.layers.99.mlp.experts.0.down_proj").matched
    assert r.quant_of("model.layers.99.mlp.experts.0.down_proj") == (None, False)
