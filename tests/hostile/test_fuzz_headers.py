"""Fuzzing the header parsers: GGUF and safetensors headers with valid structure and hostile values,
and arbitrary bytes. Each example either parses or raises a QuantspecError, within a deadline."""

from __future__ import annotations

import contextlib
import json
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantspec.checkpoint.inventory import read_header_infos
from quantspec.errors import QuantspecError
from quantspec.formats.gguf import read_gguf_header
from tests.hostile.crafted import ARRAY, STRING, s

SETTINGS = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
#: Counts and lengths chosen to lie: tiny, plausible, and far past any file size.
counts = st.one_of(st.integers(0, 8), st.sampled_from([2**31, 2**32 - 1, 2**40, 2**62, 2**64 - 1]))


@st.composite
def gguf_values(draw: st.DrawFn, depth: int = 0) -> bytes:
    vtype = draw(st.integers(0, 13))
    if vtype == STRING:
        text = draw(st.binary(max_size=16))
        lie = draw(st.none() | counts)
        return struct.pack("<I", vtype) + (s(text) if lie is None else struct.pack("<Q", lie) + text)
    if vtype == ARRAY and depth < 3:
        etype = draw(st.integers(0, 13))
        items = draw(st.lists(st.binary(max_size=8), max_size=4))
        return struct.pack("<IIQ", vtype, etype, draw(counts)) + b"".join(items)
    return struct.pack("<I", vtype) + draw(st.binary(min_size=0, max_size=8))


@st.composite
def gguf_files(draw: st.DrawFn) -> bytes:
    kvs = [s(draw(st.sampled_from(["general.architecture", "llama.block_count", "general.alignment", "x"])))
           + draw(gguf_values()) for _ in range(draw(st.integers(0, 4)))]
    infos = []
    for _ in range(draw(st.integers(0, 3))):
        dims = draw(st.lists(counts, min_size=0, max_size=5))
        n_dims = draw(st.one_of(st.just(len(dims)), counts)) % 2**32
        infos.append(s(draw(st.text(max_size=12))) + struct.pack("<I", n_dims)
                     + b"".join(struct.pack("<Q", d % 2**64) for d in dims)
                     + struct.pack("<IQ", draw(st.integers(0, 2**32 - 1)), draw(counts) % 2**64))
    head = b"GGUF" + struct.pack("<IQQ", draw(st.sampled_from([2, 3, 1, 99])), draw(st.one_of(
        st.just(len(infos)), counts)) % 2**64, draw(st.one_of(st.just(len(kvs)), counts)) % 2**64)
    body = head + b"".join(kvs) + b"".join(infos)
    return body + draw(st.binary(max_size=64))


def _gguf(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.gguf"
        path.write_bytes(data)
        with contextlib.suppress(QuantspecError):
            read_gguf_header(path)


@SETTINGS
@given(gguf_files())
def test_gguf_structured_hostile_headers(data: bytes) -> None:
    _gguf(data)


@SETTINGS
@given(st.binary(max_size=512).map(lambda b: b"GGUF" + b))
def test_gguf_arbitrary_bytes(data: bytes) -> None:
    _gguf(data)


entries = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "BF16", "I8", "U8", "F4", "X", 3]),
    "shape": st.lists(st.one_of(st.integers(-2, 8), st.sampled_from([2**40, 2**62])), max_size=4),
    "data_offsets": st.lists(st.one_of(st.integers(-4, 64), st.sampled_from([2**40, 2**63])), min_size=0,
                             max_size=3),
})


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    header = draw(st.dictionaries(st.text(max_size=8), entries, max_size=4))
    raw = json.dumps(header).encode()
    length = draw(st.one_of(st.just(len(raw)), counts)) % 2**64
    return struct.pack("<Q", length) + raw + draw(st.binary(max_size=64))


def _safetensors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.safetensors"
        path.write_bytes(data)
        with contextlib.suppress(QuantspecError):
            read_header_infos(path, path.name)


@SETTINGS
@given(safetensors_files())
def test_safetensors_structured_hostile_headers(data: bytes) -> None:
    _safetensors(data)


@SETTINGS
@given(st.binary(max_size=512))
def test_safetensors_arbitrary_bytes(data: bytes) -> None:
    _safetensors(data)
