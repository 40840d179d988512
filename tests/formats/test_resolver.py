"""Resolver gives the same answers as CheckpointDescription.resolve, fast."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from quantspec.description import CheckpointDescription, Matcher, Rule
from quantspec.formats import compressed_tensors, modelslim
from quantspec.formats.resolver import Resolver
from quantspec.vocab import FormatFamily, MatchKind
from tests.formats.examples import load

NAMES = ["a", "a.b", "a.b.c", "lm_head", "x.gate", "x.gate_proj", "m.1.q", "m.10.q"]
matchers = st.builds(
    Matcher,
    kind=st.sampled_from([MatchKind.EXACT, MatchKind.SUBSTRING, MatchKind.PREFIX, MatchKind.CLASS_NAME]),
    patterns=st.lists(st.sampled_from([*NAMES, "Linear", "gate", "m.1"]), min_size=1, max_size=3).map(tuple),
    negate=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(matchers, max_size=8), st.booleans())
def test_same_as_resolve(ms: list[Matcher], requires_entry: bool) -> None:
    desc = CheckpointDescription(
        format=FormatFamily.MODELSLIM, source="s", requires_entry=requires_entry,
        rules=tuple(Rule(match=m, quant=None, origin=f"/{i}") for i, m in enumerate(ms)),
    )
    r = Resolver(desc)
    for name in NAMES:
        for cls in ("Linear", "Embedding", None):
            assert r.resolve(name, cls) == desc.resolve(name, cls)


def test_examples_agree() -> None:
    ct = compressed_tensors.read(load("ct_mixed_w4a8.json"), file="c", source="c")
    r = Resolver(ct)
    for name in ("lm_head", "model.layers.0.mlp.gate", "model.layers.0.mlp.experts.3.up_proj",
                 "model.layers.0.mlp.shared_expert.down_proj", "model.layers.0.self_attn.o_proj"):
        assert r.resolve(name, "Linear") == ct.resolve(name, "Linear")


def test_large_modelslim_is_fast() -> None:
    d = {f"model.layers.{i}.mlp.experts.{e}.down_proj.weight": "W8A8_DYNAMIC" for i in range(40) for e in range(128)}
    desc = modelslim.read(d, file="q", source="q")
    r = Resolver(desc)
    start = time.perf_counter()
    for key in d:
        assert r.resolve(key[: -len(".weight")]).matched
    assert time.perf_counter() - start < 2.0
    assert not r.resolve("model.layers.99.mlp.experts.0.down_proj").matched
