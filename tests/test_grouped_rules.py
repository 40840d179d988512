"""EXACT rules that list many modules with one origin per module (``Rule.origins``).

ModelSlim groups its per-tensor entries by type label into one rule per label; every module
must still resolve to the JSON pointer of its own entry, through ``resolve`` and the indexed
``Resolver`` alike, and summaries must count entries, not rules.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from quantspec.description import CheckpointDescription, Matcher, QuantSpec, Rule, WeightQuant
from quantspec.formats import modelslim
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatchKind, SchemeId

W8 = QuantSpec(scheme=SchemeId.W8A16, label="W8A16",
               weight=WeightQuant(element=ElementType.INT8, bits=8, granularity=Granularity.CHANNEL,
                                  layout=Layout.MODELSLIM_INT8))


def _grouped() -> CheckpointDescription:
    rules = (
        Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("a.q", "a/b~c")), quant=W8, origin="/p/a.q.weight",
             origins=("/p/", ".weight")),
        Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("lm_head", "a.q")), quant=None, origin="/p/lm_head.weight",
             origins=("/p/", ".weight")),
    )
    return CheckpointDescription(format=FormatFamily.MODELSLIM, source="s", rules=rules, requires_entry=True)


@pytest.mark.parametrize(("module", "quant", "origin"), [
    ("a.q", W8, "/p/a.q.weight"),  # the first rule listing it wins
    ("a/b~c", W8, "/p/a~1b~0c.weight"),  # escaped as a JSON pointer token
    ("lm_head", None, "/p/lm_head.weight"),
])
def test_each_module_resolves_to_its_own_origin(module: str, quant: QuantSpec | None, origin: str) -> None:
    desc = _grouped()
    for res in (desc.resolve(module), desc.resolver().resolve(module)):
        assert (res.quant, res.matched, res.origin) == (quant, True, origin)
    assert desc.resolver().quant_of(module) == (quant, True)


def test_unlisted_module_is_unmatched() -> None:
    desc = _grouped()
    assert desc.resolve("other") == desc.resolver().resolve("other")
    assert not desc.resolver().resolve("other").matched
    assert desc.resolver().quants(["a.q", "other"]) == ([W8, None], ["other"])


def test_summary_counts_entries() -> None:
    assert _grouped().summary()["rules"] == {"W8A16": 2, "FLOAT": 2}


@pytest.mark.parametrize("matcher", [Matcher(kind=MatchKind.PREFIX, patterns=("a",)),
                                     Matcher(kind=MatchKind.EXACT, patterns=("a",), negate=True)])
def test_origins_need_a_plain_exact_matcher(matcher: Matcher) -> None:
    with pytest.raises(ValidationError, match="per-pattern origins"):
        Rule(match=matcher, quant=None, origin="/a", origins=("/", ".weight"))


def test_modelslim_groups_entries_by_label_and_keeps_pointers() -> None:
    data = {"model_quant_type": "W8A8_DYNAMIC", "x.0.q.weight": "W8A8_DYNAMIC", "x.0.q.weight_scale": "W8A8_DYNAMIC",
            "lm_head.weight": "FLOAT", "x.1.q.weight": "W8A8_DYNAMIC", "x/1~k.weight": "W8A16"}
    desc = modelslim.read(data, file="f", source="s", prefix="/quantization_config")
    assert [r.match.patterns for r in desc.rules] == [("x.0.q", "x.1.q"), ("lm_head",), ("x/1~k",)]
    assert [r.origin for r in desc.rules] == ["/quantization_config/x.0.q.weight",
                                              "/quantization_config/lm_head.weight",
                                              "/quantization_config/x~11~0k.weight"]
    for module in ("x.0.q", "x.1.q", "lm_head", "x/1~k"):
        ptr = "/quantization_config/" + module.replace("~", "~0").replace("/", "~1") + ".weight"
        assert desc.resolve(module).origin == ptr == desc.resolver().resolve(module).origin
    assert desc.summary()["rules"] == {"W8A8_DYNAMIC": 2, "FLOAT": 1, "W8A16": 1}
