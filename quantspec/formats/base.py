"""Helpers shared by the format modules: raw-model parsing, JSON pointers, common values.

Every format module turns a producer's JSON into a raw pydantic model first. Validation
errors become :class:`~quantspec.errors.Reason` objects whose ``where`` is a JSON pointer
into the file, so ``quantspec validate`` can say exactly which key is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from quantspec.description import WeightQuant
from quantspec.errors import Code, InvalidCheckpoint, Reason, reason
from quantspec.formats.specs import SUPPORTED_FORMATS
from quantspec.vocab import ElementType, Granularity, SchemeId

M = TypeVar("M", bound=BaseModel)

class RawModel(BaseModel):
    """Base of raw models that keep unknown keys (producers add keys over time)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def extra_keys(self) -> dict[str, Any]:
        """Keys the model does not declare, as read."""
        return dict(self.__pydantic_extra__ or {})


class StrictRawModel(BaseModel):
    """Base of raw models whose producer itself forbids unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def escape_pointer(token: str) -> str:
    """Escape one JSON-pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def pointer(prefix: str, *tokens: object) -> str:
    """JSON pointer ``prefix`` followed by ``tokens`` (``""`` is the whole document)."""
    return prefix + "".join("/" + escape_pointer(str(t)) for t in tokens)


_TYPE_ERRORS = ("_type", "_parsing", "is_instance_of", "model_attributes_type", "dict_type", "list_type")


def _code_for(error_type: str) -> Code:
    if error_type == "missing":
        return Code.FORMAT_MISSING_FIELD
    if error_type in ("literal_error", "enum"):
        return Code.FORMAT_UNKNOWN_VALUE
    if any(error_type.endswith(t) or error_type == t.strip("_") for t in _TYPE_ERRORS):
        return Code.FORMAT_WRONG_TYPE
    return Code.FORMAT_SCHEMA


def _loc_tokens(loc: Iterable[int | str], data: Any) -> list[str] | None:
    """JSON-pointer tokens of a pydantic location, without union-member tags.

    pydantic inserts tags (``QuantizationScheme``, ``list[str]``, ``function-after[...]``) into
    locations; walking the input tells keys from tags. Returns None for an error of the
    alternative member of ``Model | list[...]`` (reported through the other member).
    """
    parts = list(loc)
    out: list[str] = []
    node = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, Mapping) and isinstance(part, str) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(str(part))
            node = node[part]
        elif last and "[" not in str(part) and isinstance(node, Mapping):
            out.append(str(part))  # a missing or extra key
        elif "[" in str(part) and isinstance(node, Mapping) and str(part).startswith(("list[", "tuple[")):
            return None
    return out


def validation_reasons(exc: ValidationError, *, file: str, prefix: str = "", data: Any = None) -> list[Reason]:
    """Translate a pydantic ``ValidationError`` into reasons with JSON pointers."""
    out: list[Reason] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        tokens = _loc_tokens(err["loc"], data)
        if tokens is None:
            continue
        where = pointer(prefix, *tokens) or "/"
        code = _code_for(err["type"])
        key = (code.value, where)
        if key in seen:  # union members repeat the same complaint
            continue
        seen.add(key)
        value = err.get("input")
        shown = repr(value) if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
        message = err["msg"] if code is Code.FORMAT_MISSING_FIELD else f"{err['msg']} (got {shown})"
        out.append(reason(code, message, file=file, where=where, hint=_hint(code)))
    if not out:  # every error was an alternative member: report the first as it is
        err = exc.errors(include_url=False)[0]
        out.append(reason(_code_for(err["type"]), err["msg"], file=file, where=prefix or "/"))
    return out


def _hint(code: Code) -> str:
    return {
        Code.FORMAT_MISSING_FIELD: "add the key; the producer always writes it",
        Code.FORMAT_WRONG_TYPE: "the value has the wrong JSON type for this key",
        Code.FORMAT_UNKNOWN_VALUE: "use one of the values the producer documents",
    }.get(code, "the file does not match the producer's schema (see schemas/ and docs/formats.md)")


def parse_raw(model: type[M], data: Any, *, file: str, prefix: str = "") -> M:
    """Validate ``data`` into ``model``; raise :class:`InvalidCheckpoint` with every problem."""
    if not isinstance(data, Mapping):
        raise InvalidCheckpoint(
            reason(
                Code.FORMAT_WRONG_TYPE,
                f"expected a JSON object, got {_json_type(data)}",
                file=file,
                where=prefix or "/",
                hint="the description must be an object of key/value pairs",
            )
        )
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidCheckpoint(validation_reasons(exc, file=file, prefix=prefix, data=data)) from None
    except (RecursionError, ValueError, TypeError) as exc:  # pathological inputs (deep nesting)
        raise InvalidCheckpoint(
            reason(Code.FORMAT_SCHEMA, f"cannot validate: {type(exc).__name__}", file=file, where=prefix or "/")
        ) from None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return type(value).__name__


def unsupported(name: str, *, file: str, where: str | None, detail: str = "") -> InvalidCheckpoint:
    """The error for a recognised format quantspec does not support (named, with the supported list)."""
    extra = f" ({detail})" if detail else ""
    return InvalidCheckpoint(
        reason(
            Code.FORMAT_UNSUPPORTED,
            f"{name} checkpoints are not supported on Ascend NPUs by quantspec{extra}",
            file=file,
            where=where,
            hint="supported formats: " + ", ".join(SUPPORTED_FORMATS),
        )
    )


_INT_ELEMENTS = {2: ElementType.INT2, 3: ElementType.INT3, 4: ElementType.INT4, 8: ElementType.INT8}


def int_element(bits: int) -> ElementType | None:
    """Integer element type of a bit width, None for widths quantspec has no element for."""
    return _INT_ELEMENTS.get(bits)


def weight_only_scheme(bits: int) -> SchemeId | None:
    """The NPU scheme of integer weight-only quantization (``npu_weight_quant_batchmatmul``)."""
    return {4: SchemeId.W4A16, 8: SchemeId.W8A16}.get(bits)


def group_fields(group_size: int | None) -> tuple[Granularity, int | None]:
    """Granularity and group size of a GPTQ/AWQ-style ``group_size`` (-1 or None: per channel)."""
    if group_size is None or group_size <= 0:
        return Granularity.CHANNEL, None
    return Granularity.GROUP, group_size


def int_weight(bits: int, group_size: int | None, **kw: Any) -> WeightQuant:
    """An integer WeightQuant; widths without an element type keep their bits on an int8 element."""
    granularity, group = group_fields(group_size)
    element = int_element(bits) or ElementType.INT8
    return WeightQuant(element=element, bits=max(1, min(bits, 32)), granularity=granularity, group_size=group, **kw)


def group_label(group_size: int | None) -> str:
    """``g128`` or ``channel``, for labels."""
    return f"g{group_size}" if group_size is not None and group_size > 0 else "channel"


def extras_of(raw: BaseModel, interpreted: Iterable[str]) -> dict[str, JsonValue]:
    """Every key of ``raw`` that the normaliser did not turn into rules, as read (nulls dropped)."""
    data: dict[str, JsonValue] = raw.model_dump(mode="json", exclude_none=True, exclude=set(interpreted))
    return data
