"""`make bench`: run every benchmark module in this folder (``bench/bench_*.py``), or the ones named.

Benchmarks print their figures (and, where an issue names a peer or a limit, the ratio measured in the same
run). They are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    here = Path(__file__).parent
    modules = names or sorted(p.stem for p in here.glob("bench_*.py"))
    if not modules:
        print("bench: no benchmarks yet")
        return 0
    for name in modules:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
