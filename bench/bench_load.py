"""Benchmark ``load_quantized`` (cpu backend) against plain safetensors reading of the same files.

Writes a Llama-shaped ModelSlim W8A8_DYNAMIC checkpoint (random int8 weights, bf16 scales,
float embeddings/norms; several shards with an index), then measures in fresh subprocesses:

1. **throughput**: bytes of the checkpoint / seconds for (a) ``safetensors.torch.load_file`` of
   every shard (the baseline: reading, nothing else) and (b) ``load_quantized(..., "cpu")``
   (planning, streaming reads, repacking to the NPU layout: the ``[K, N]`` operand, FRACTAL_NZ
   cast), plus the quantspec reader alone and ``quantspec.plan`` alone (the fixed cost before the
   first read); a discarded warm-up round, then N rounds of the four back to back, files warm in
   the page cache, bytecode cached as in an installed package; throughput ratios are paired per
   round and the median is reported;
2. **peak RSS**: the peak resident set (``VmHWM``, reset with ``/proc/self/clear_refs`` after the
   imports) of a process that loads the checkpoint, minus its RSS after importing torch and
   quantspec (the interpreter + torch baseline), against the checkpoint size.

    python bench/bench_load.py [--dir DIR] [--layers 8] [--hidden 4096] [--inter 11008] [--vocab 32000] [--runs 3]

The defaults are eight decoder layers of a 7B Llama (1.8 GiB): big enough that throughput, not the
fixed cost of planning and first-call imports (~0.03 s), decides the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, sys, time
mode, path = sys.argv[1], sys.argv[2]
import torch  # noqa: F401
if mode == "load":
    from quantspec.runtime.loader import load_quantized
elif mode == "plan":
    from quantspec.runtime.loader import load_quantized
    import quantspec
elif mode == "stream":
    from pathlib import Path
    from quantspec.checkpoint.inventory import read_inventory
    from quantspec.runtime.loader.reader import TensorReader
else:
    from pathlib import Path
    from safetensors.torch import load_file


def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))


with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
    fh.write("5")
base = status("VmRSS:")
t0 = time.perf_counter()
c0 = time.process_time()
if mode == "load":
    qm = load_quantized(path, "cpu", progress=False)
    n = len(qm.state_dict())
elif mode == "plan":  # what load_quantized spends before its first read
    n = len(quantspec.plan(path, target="a2").layers)
elif mode == "stream":
    inv = read_inventory(Path(path))
    with TensorReader(Path(path), inv.tensors) as reader:
        out = {k: reader.read(k) for k in inv.tensors}
    n = len(out)
else:
    out = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        # load_file maps the file lazily; clone() reads the bytes into process memory, as a loader must
        out.update({k: v.clone() for k, v in load_file(str(f)).items()})
    n = len(out)
dt = time.perf_counter() - t0
cpu = time.process_time() - c0  # every thread of the process: moves less with the machine's load
print(json.dumps({"seconds": dt, "cpu": cpu, "base_kib": base, "peak_kib": status("VmHWM:"), "tensors": n}))
"""


def write_checkpoint(out: Path, layers: int, hidden: int, inter: int, *, vocab: int, shards: int = 4) -> int:
    """A ModelSlim W8A8_DYNAMIC Llama-shaped checkpoint; returns its size in bytes."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    heads, kv = hidden // 128, max(1, hidden // 512)
    desc: dict[str, str] = {"model_quant_type": "W8A8_DYNAMIC", "version": "1.0.0"}
    groups: list[dict[str, torch.Tensor]] = [{} for _ in range(shards)]
    shapes = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv * 128, hidden),
              "self_attn.v_proj": (kv * 128, hidden), "self_attn.o_proj": (hidden, hidden),
              "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}
    for i in range(layers):
        bucket = groups[i * shards // layers]
        for mod, (n, k) in shapes.items():
            name = f"model.layers.{i}.{mod}"
            bucket[f"{name}.weight"] = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
            bucket[f"{name}.weight_scale"] = (torch.rand(n, 1, generator=gen) * 0.01).to(torch.bfloat16)
            bucket[f"{name}.weight_offset"] = torch.zeros(n, 1, dtype=torch.bfloat16)
            for s in ("weight", "weight_scale", "weight_offset"):
                desc[f"{name}.{s}"] = "W8A8_DYNAMIC"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            bucket[f"model.layers.{i}.{norm}.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
            desc[f"model.layers.{i}.{norm}.weight"] = "FLOAT"
    groups[0]["model.embed_tokens.weight"] = torch.randn(vocab, hidden, generator=gen).to(torch.bfloat16)
    groups[-1]["lm_head.weight"] = torch.randn(vocab, hidden, generator=gen).to(torch.bfloat16)
    groups[-1]["model.norm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
    for name in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"):
        desc[name] = "FLOAT"
    weight_map: dict[str, str] = {}
    for j, g in enumerate(groups):
        fname = f"model-{j + 1:05d}-of-{shards:05d}.safetensors"
        save_file(g, str(out / fname))
        weight_map.update(dict.fromkeys(g, fname))
    (out / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (out / "quant_model_description.json").write_text(json.dumps(desc))
    (out / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "vocab_size": vocab, "torch_dtype": "bfloat16"}))
    return sum(p.stat().st_size for p in out.glob("*.safetensors"))


def child(mode: str, path: Path, pycache: str) -> dict[str, float]:
    """Run one measurement in a fresh interpreter.

    Bytecode goes to ``pycache`` (compiled by a discarded warm-up round), as in an installed
    package: this environment sets ``PYTHONDONTWRITEBYTECODE``, which would otherwise make every
    child compile the modules that ``load_quantized`` imports on its first call, inside the clock.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), PYTHONPYCACHEPREFIX=pycache)
    res = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path)], capture_output=True, text=True, check=True,
                         env=env)
    data: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/quantspec-bench-load"))
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--inter", type=int, default=11008)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size = write_checkpoint(args.dir, args.layers, args.hidden, args.inter, vocab=args.vocab)
    for p in args.dir.glob("*.safetensors"):  # warm the page cache for both readers
        p.read_bytes()
    runs: dict[str, list[dict[str, float]]] = {"read": [], "stream": [], "load": [], "plan": []}
    with tempfile.TemporaryDirectory(prefix="quantspec-pyc-") as pycache:
        for rnd in range(args.runs + 1):
            for mode, results in runs.items():
                result = child(mode, args.dir, pycache)
                if rnd:  # round 0 compiles the bytecode and warms up
                    results.append(result)
    best = {m: min(r, key=lambda d: d["seconds"]) for m, r in runs.items()}
    mib = size / 2**20
    # Ratios are paired per round (the three readers run back to back), then the median is taken:
    # a shared machine's load changes between rounds, much less within one.
    ratio = {m: statistics.median(runs["read"][i]["seconds"] / runs[m][i]["seconds"] for i in range(args.runs))
             for m in ("read", "stream", "load")}
    extra = {m: (max(d["peak_kib"] - d["base_kib"] for d in runs[m])) / 1024 for m in ("read", "stream", "load")}
    base = min(d["base_kib"] for d in runs["load"]) / 1024
    print(f"checkpoint: {args.layers} layers, hidden {args.hidden}, intermediate {args.inter}: {mib:.0f} MiB "
          f"in {len(list(args.dir.glob('*.safetensors')))} shards; {args.runs} rounds; load average "
          f"{os.getloadavg()[0]:.2f}; interpreter + torch + quantspec baseline RSS {base:.0f} MiB")
    print("| reader | best seconds | best MiB/s | throughput vs safetensors (median of rounds) "
          "| peak RSS above baseline |")
    print("|---|---|---|---|---|")
    names = {"read": "safetensors `load_file` + copy (baseline)", "stream": "quantspec streaming reader alone",
             "load": "`load_quantized(..., \"cpu\")` (plan + read + repack)"}
    for m in ("read", "stream", "load"):
        print(f"| {names[m]} | {best[m]['seconds']:.2f} | {mib / best[m]['seconds']:.0f} | {ratio[m]:.2f} | "
              f"{extra[m]:.0f} MiB = {extra[m] / mib:.2f} x checkpoint |")

    plan = statistics.median(d["seconds"] for d in runs["plan"])
    print(f"of which planning (`quantspec.plan` alone, first call in a fresh process, median): {plan:.3f} s; "
          f"load throughput past the plan vs safetensors (median of rounds): " + "{:.2f}".format(statistics.median(
              runs["read"][i]["seconds"] / (runs["load"][i]["seconds"] - plan) for i in range(args.runs))))
    # per-round seconds, so that a median ratio can be traced to the rounds behind it
    for m in ("read", "stream", "load", "plan"):
        print(f"{m} seconds per round: " + " ".join(f"{d['seconds']:.2f}" for d in runs[m]))
        print(f"{m} CPU seconds per round: " + " ".join(f"{d['cpu']:.2f}" for d in runs[m]))


if __name__ == "__main__":
    main()
