"""Crafted hostile GGUF and safetensors files: refused with a coded error (exit 2), quickly.

Each file is under 1 KiB; planning or validating it must end in well under a second. The bound
asserted here (5 s, measured in this process) is a hang guard over 10x the expected time, not a
benchmark.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import quantspec
from quantspec.cli.main import main as cli
from quantspec.errors import QuantspecError
from tests.hostile.crafted import GGUF_CASES, SAFETENSORS_CASES

HANG_GUARD_S = 5.0


def _folder(tmp_path: Path, name: str, data: bytes) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    (root / name).write_bytes(data)
    return root


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    rc = cli(args)
    elapsed = time.perf_counter() - start
    out = capsys.readouterr()
    return rc, out.out + out.err, elapsed


#: The code each crafted GGUF file is refused with (validate and plan alike); None: a well-formed file
#: whose block count lies, which must simply not be trusted (split files hold some blocks only).
GGUF_CODES: dict[str, str | None] = {case: "tensor.bad_header" for case in GGUF_CASES}
GGUF_CODES.update(block_count_2e62=None, block_count_1e7=None)


@pytest.mark.parametrize("case", sorted(GGUF_CASES))
def test_crafted_gguf_is_refused_quickly(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder(tmp_path, "model.gguf", GGUF_CASES[case])
    for args in (["validate", str(root)], ["plan", str(root), "--target", "a2"]):
        rc, out, elapsed = _run(args, capsys)
        assert elapsed < HANG_GUARD_S, (case, args[0], elapsed)
        assert "internal error" not in out and rc != 3, (case, args[0], out)
        code = GGUF_CODES[case]
        if code is not None:  # validate reports a damaged file as a finding (1); plan cannot start (2)
            assert rc == (1 if args[0] == "validate" else 2), (case, args[0], out)
            assert f"[{code}]" in out and "model.gguf" in out, (case, args[0], out)


@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_crafted_safetensors_is_refused_quickly(case: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder(tmp_path, "model.safetensors", SAFETENSORS_CASES[case])
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "bfloat16"}))
    rc, out, elapsed = _run(["plan", str(root), "--target", "a2"], capsys)
    assert rc == 2, (case, out)
    assert "model.safetensors" in out and "internal error" not in out
    assert elapsed < HANG_GUARD_S, (case, elapsed)


def test_block_count_does_not_size_the_name_map(tmp_path: Path) -> None:
    """A file claiming 2^62 blocks with one real block plans like a one-block file."""
    from quantspec.formats.gguf import read_gguf_header
    from tests.hostile.crafted import ARCH, ONE_TENSOR, U64, _aligned, header, kv

    data = _aligned(header(1, [ARCH, kv("llama.block_count", U64, (2**62).to_bytes(8, "little"))]) + ONE_TENSOR,
                    b"\0" * 16)
    path = tmp_path / "x.gguf"
    path.write_bytes(data)
    h = read_gguf_header(path)
    assert h.block_count == 1 and h.metadata["llama.block_count"] == 2**62
    start = time.perf_counter()
    plan = quantspec.plan(tmp_path, target="a2")
    assert time.perf_counter() - start < HANG_GUARD_S and plan.layers


def test_exact_message_for_a_lying_array(tmp_path: Path) -> None:
    from quantspec.formats.gguf import read_gguf_header

    path = tmp_path / "x.gguf"
    path.write_bytes(GGUF_CASES["array_2e40"])
    with pytest.raises(QuantspecError) as err:
        read_gguf_header(path)
    [r] = err.value.reasons
    assert r.code.value == "tensor.bad_header" and r.file == str(path)
    assert r.message == ("GGUF header: metadata 'x' claims 1099511627776 items (1099511627776 bytes at least), "
                         "0 bytes left in the file (byte 49)")


def test_duplicate_keys_are_found_after_unescaping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``"a\\u0062"`` and ``"ab"`` are one key: in a safetensors header and in a description file."""
    root = _folder(tmp_path, "model.safetensors", SAFETENSORS_CASES["escaped_duplicate"])
    rc, out, _ = _run(["plan", str(root), "--target", "a2"], capsys)
    assert rc == 2 and "[input.duplicate_key] key 'ab' appears more than once in one object" in out, out
    desc = tmp_path / "d"
    desc.mkdir()
    (desc / "quant_model_description.json").write_text('{"version": "1.0.0", "m.weight": "W8A8_DYNAMIC", '
                                                       '"m.w\\u0065ight": "FLOAT"}')
    rc, out, _ = _run(["validate", str(desc)], capsys)
    assert rc == 2 and "[input.duplicate_key] key 'm.weight' appears more than once" in out, out


def test_a_1_mib_header_of_the_slowest_kind_is_read_quickly(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The most work per byte a GGUF header can ask for: 1 MiB of empty strings in one array (131,064
    items, each a length to check). Target: under 2 s for any file up to 1 MiB (0.36 s measured here);
    the guard is 10x the target."""
    import struct

    from tests.hostile.crafted import ARRAY, STRING, header, kv

    n = (2**20 - 64) // 8
    root = _folder(tmp_path, "model.gguf", header(0, [kv("x", ARRAY, struct.pack("<IQ", STRING, n) + bytes(8 * n))]))
    rc, out, elapsed = _run(["validate", str(root)], capsys)
    assert rc in (0, 1) and "internal error" not in out
    assert elapsed < 20.0, elapsed
