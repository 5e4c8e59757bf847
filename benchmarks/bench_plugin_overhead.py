"""What the plugin costs a suite that makes no LLM calls: 2,000 trivial tests, with and without.

Each round runs ``pytest -q`` on a generated file of ``--tests`` trivial tests twice, once
with the plugin and once with ``-p no:llmperf``, in alternating order, each in a fresh
process; the figure is the median over rounds of (with) / (without) wall time. Target: at
most 1.03.

    .venv/bin/python benchmarks/bench_plugin_overhead.py [--tests 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.03


def run(folder: Path, *args: str) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_trivial.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"the suite failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        body = "".join(f"def test_{i}():\n    assert {i} == {i}\n\n" for i in range(args.tests))
        (folder / "test_trivial.py").write_text(body, encoding="utf-8")
        run(folder)  # warm the file system and the bytecode caches
        ratios, withs, withouts = [], [], []
        for round_ in range(args.rounds):
            if round_ % 2:
                without = run(folder, "-p", "no:llmperf")
                with_ = run(folder)
            else:
                with_ = run(folder)
                without = run(folder, "-p", "no:llmperf")
            withs.append(with_)
            withouts.append(without)
            ratios.append(with_ / without)
            print(
                f"round {round_ + 1}: with {with_:.2f} s, without {without:.2f} s, "
                f"ratio {with_ / without:.3f}"
            )
    ratio = statistics.median(ratios)
    print(
        f"{args.tests} trivial tests: median with {statistics.median(withs):.2f} s, without "
        f"{statistics.median(withouts):.2f} s; overhead ratio {ratio:.3f} (target <= {TARGET})"
    )
    print(("PASS" if ratio <= TARGET else "FAIL") + f": the plugin costs {100 * (ratio - 1):.1f}%")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    sys.exit(main(parser.parse_args()))
