"""Block-Gibbs throughput without pytest: prints the Markdown table of the benchmark suite.

Usage: python benchmarks/report.py [--quick]
Each rate is the best of several timed calls of k sweeps (k calibrated to a target duration).
"""

from __future__ import annotations

import argparse
import sys
import time

from _gibbs_cases import CASES, RUNNERS, SGEMM_FLOPS, Results, calibrate, sgemm_runner, torch


def best_rate(run, target_s: float, repeats: int) -> float:
    """Units of run (sweeps, products) per second: best of `repeats` timed run(k) of ~target_s."""
    k = calibrate(run, target_s)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(k)
        times.append(time.perf_counter() - start)
    return k / min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Block-Gibbs sweeps/s of qvae-core vs torch, and numpy SGEMM.")
    parser.add_argument("--quick", action="store_true", help="short run: 0.05 s calls, best of 3 (default 0.5 s, best of 5)")
    args = parser.parse_args(argv)
    target_s, repeats = (0.05, 3) if args.quick else (0.5, 5)

    results = Results()
    results.sgemm_gflops = best_rate(sgemm_runner(), target_s, repeats) * SGEMM_FLOPS / 1e9
    for case in CASES:
        model = case.model()
        for name, make_runner in RUNNERS.items():
            if name == "torch" and torch is None:
                continue
            print(f"measuring {name} on {case.name} ...", file=sys.stderr)
            results.rates[name, case.name] = best_rate(make_runner(model), target_s, repeats)
    print(results.markdown())


if __name__ == "__main__":
    main()
