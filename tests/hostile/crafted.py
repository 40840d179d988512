"""Crafted hostile files: raw GGUF and safetensors bytes with lying counts and lengths.

Written byte by byte (no library writer would produce them), so that each file is exactly the
attack it names. :data:`GGUF_CASES` maps a case id to its bytes; every one is under 1 KiB.
"""

from __future__ import annotations

import json
import struct

U8, U32, STRING, ARRAY, U64 = 0, 4, 8, 9, 10


def s(text: str | bytes) -> bytes:
    """A GGUF string: uint64 length, then the bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    """One metadata entry."""
    return s(key) + struct.pack("<I", vtype) + payload


def header(n_tensors: int, kvs: list[bytes], *, version: int = 3) -> bytes:
    """Magic, version, counts and the metadata entries."""
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(kvs)) + b"".join(kvs)


def tensor_info(name: str, dims: tuple[int, ...], type_id: int = 0, offset: int = 0) -> bytes:
    """One tensor info record (type 0 = F32)."""
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", type_id, offset)


def _aligned(body: bytes, data: bytes = b"") -> bytes:
    pad = -len(body) % 32
    return body + b"\0" * pad + data


ARCH = kv("general.architecture", STRING, s("llama"))
ONE_TENSOR = tensor_info("blk.0.attn_norm.weight", (4,))

GGUF_CASES: dict[str, bytes] = {
    # a uint8 array that claims 2^40 items in a truncated file
    "array_2e40": header(0, [kv("x", ARRAY, struct.pack("<IQ", U8, 2**40))]),
    # block counts that would build name maps for 2^62 or 10^7 blocks
    "block_count_2e62": _aligned(header(1, [ARCH, kv("llama.block_count", U64, struct.pack("<Q", 2**62))])
                                 + ONE_TENSOR, b"\0" * 16),
    "block_count_1e7": _aligned(header(1, [ARCH, kv("llama.block_count", U32, struct.pack("<I", 10**7))])
                                + ONE_TENSOR, b"\0" * 16),
    # general.architecture that is not a string
    "architecture_not_a_string": _aligned(header(1, [kv("general.architecture", U32, struct.pack("<I", 7))])
                                          + ONE_TENSOR, b"\0" * 16),
    "tensor_count_2e60": header(2**60, [ARCH]),
    "kv_count_2e60": b"GGUF" + struct.pack("<IQQ", 3, 0, 2**60),
    "string_length_2e63": header(0, [kv("x", STRING, struct.pack("<Q", 2**63))]),
    "key_length_huge": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**40),
    "nested_arrays": header(0, [kv("x", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", ARRAY, 1)
                                   + struct.pack("<IQ", U8, 1) + b"\1")]),
    "strings_array_lies": header(0, [kv("x", ARRAY, struct.pack("<IQ", STRING, 2**30) + s("a"))]),
    "dims_100": _aligned(header(1, [ARCH]) + s("t") + struct.pack("<I", 100) + b"\0" * 64),
    "data_outside_file": _aligned(header(1, [ARCH]) + tensor_info("blk.0.attn_norm.weight", (2**20,)), b"\0" * 16),
    "offset_overflow": _aligned(header(1, [ARCH]) + tensor_info("blk.0.attn_norm.weight", (4,), offset=2**63)),
    "unknown_value_type": header(0, [kv("x", 77, b"\0" * 8)]),
    "unknown_ggml_type": _aligned(header(1, [ARCH]) + tensor_info("blk.0.attn_norm.weight", (4,), type_id=999),
                                  b"\0" * 16),
    "name_with_nul": _aligned(header(1, [ARCH]) + tensor_info("blk.0.attn\0norm.weight", (4,)), b"\0" * 16),
    "bad_magic": b"GGUX" + b"\0" * 20,
    "version_99": header(0, [], version=99),
    "empty": b"",
    "only_magic": b"GGUF",
}


def safetensors_bytes(header_obj: object, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file: the 8-byte header length (``length`` to lie about it), the JSON header, data."""
    raw = json.dumps(header_obj).encode() if not isinstance(header_obj, bytes) else header_obj
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


SAFETENSORS_CASES: dict[str, bytes] = {
    "header_length_2e62": safetensors_bytes({}, length=2**62),
    "header_length_past_end": safetensors_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                                length=10**6),
    "shape_2e62": safetensors_bytes({"a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]}},
                                    b"\0" * 4),
    "negative_shape": safetensors_bytes({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
    "offsets_past_end": safetensors_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 2**40]}}),
    "deep_json": safetensors_bytes(b"[" * 100_000 + b"]" * 100_000),
    "escaped_duplicate": safetensors_bytes(
        b'{"ab": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
        b'"a\\u0062": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4),
    "not_utf8": safetensors_bytes(b'{"\xff": 1}'),
    "nul_in_name": safetensors_bytes({"a\0b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
    "truncated": safetensors_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})[:-3],
}
