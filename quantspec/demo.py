"""``make demo``: the main job on the bundled example.

Shows what the support matrix says for the example's target generation (A2).
"""

from __future__ import annotations

from quantspec.cli.main import main as cli


def main() -> int:
    """Run the demo steps and return the exit code of the last one."""
    print("== quantspec matrix --target a2 (support for the bundled example's target)")
    return cli(["matrix", "--target", "a2"])


if __name__ == "__main__":
    raise SystemExit(main())
