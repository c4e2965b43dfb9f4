"""Benchmark tables without pytest: block Gibbs, population annealing, CT-QMC and minor embedding, in Markdown.

Usage: python benchmarks/report.py [--quick] [--only {gibbs,anneal,ctqmc,embedding} ...]
A sweep rate is the best of several timed calls of k sweeps (k calibrated to a target duration); the
CT-QMC section times its runners in turn, round after round, so its ratios share the machine's spells;
an annealing case is independent runs with seeds 0, 1, ... (fewer with --quick).
The CT-QMC and embedding reference rows need `pip install dwave-samplers`; the embedding section
needs minorminer (extra `dwave`).
"""

from __future__ import annotations

import argparse
import sys
import time

from qvae_core.torch_env import shorten_torch_spin

shorten_torch_spin()  # before torch loads, as in conftest.py

import _anneal_cases  # noqa: E402
import _ctqmc_cases  # noqa: E402
import _embedding_cases  # noqa: E402
import _gibbs_cases  # noqa: E402
from _gibbs_cases import best_rate, best_rates  # noqa: E402

SECTIONS = ("gibbs", "anneal", "ctqmc", "embedding")


def _progress(message: str) -> None:
    print(message, file=sys.stderr)


def gibbs_report(target_s: float, repeats: int) -> str:
    """Block-Gibbs sweeps/s of qvae-core and torch, and numpy's SGEMM rate."""
    results = _gibbs_cases.Results()
    # Every qvae-core row before any torch row (as in the pytest suite): torch's OpenMP threads
    # keep spinning after a call and would take cores from the next measurement.
    models = {case.name: case.model() for case in _gibbs_cases.CASES}
    for name, make_runner in _gibbs_cases.RUNNERS.items():
        if name == "torch" and _gibbs_cases.torch is None:
            continue
        for case, model in models.items():
            _progress(f"measuring {name} on {case} ...")
            results.rates[name, case] = best_rate(make_runner(model), target_s, repeats)
    # Last: OpenBLAS's threads spin for a while after a call and would slow whatever ran next.
    results.sgemm_gflops = best_rate(_gibbs_cases.sgemm_runner(), target_s, repeats) * _gibbs_cases.SGEMM_FLOPS / 1e9
    return results.markdown()


def anneal_results(cases, quick: bool) -> _anneal_cases.Results:
    """Runs of each case: all of case.runs, or with --quick 2 for log Z and 1 for log_diag."""
    results = _anneal_cases.Results()
    for case in cases:
        runs = min(case.runs, 2 if case.states is None else 1) if quick else case.runs
        _progress(f"running {case.quantity} on {case.name} (population {case.population}) x {runs} ...")
        problem, measured = _anneal_cases.measure(case, runs)
        for run in measured:
            results.add(case, problem, run)
    return results


def ctqmc_report(target_s: float, repeats: int, quick: bool) -> str:
    """CT-QMC sweeps/s against dwave-samplers and block Gibbs, then quantum log Z and log_diag."""
    results = _ctqmc_cases.Results()
    for case, make_model in _ctqmc_cases.SWEEP_CASES.items():
        model = make_model()
        runs = {name: make(model) for name, make in _ctqmc_cases.RUNNERS.items() if _ctqmc_cases.runner_available(name)}
        _progress(f"measuring {', '.join(runs)} on {case}, in turn ...")
        for name, rate in best_rates(runs, target_s, repeats).items():
            results.rates[name, case] = rate
    qbm = anneal_results(_ctqmc_cases.QBM_CASES, quick)
    return results.markdown() + "\n\n" + qbm.markdown(_ctqmc_cases.QBM_CASES, goal=None)


def embedding_report(target_s: float, repeats: int, quick: bool) -> str:
    """Time to find K_60's embeddings, then emulation sweeps/s against dwave-samplers' annealer, in turn."""
    cases = _embedding_cases
    results = cases.Results()
    methods = [("chimera(16)", "clique"), ("pegasus(16)", "clique")] + ([] if quick else [("chimera(16)", "heuristic")])
    for topology, method in methods:
        _progress(f"finding the {method} embedding of K_60 in {topology} ...")
        found = cases.find(topology, method)
        rounds = 1 if method == "heuristic" else repeats
        seconds = cases.best_seconds(lambda: cases.find(topology, method), rounds) if rounds > 1 else None
        if seconds is None:
            start = time.perf_counter()
            cases.find(topology, method)
            seconds = time.perf_counter() - start
        alone = cases.best_seconds(cases.busclique_call(topology), repeats) if method == "clique" else None
        results.embeddings[topology, method] = (found, seconds, alone)
        model = cases.physical_model(found)
        runs = {name: make(model) for name, make in cases.RUNNERS.items() if cases.runner_available(name)}
        case = f"{topology} {method}"
        _progress(f"measuring {', '.join(runs)} on {case}, in turn ...")
        for name, rate in best_rates(runs, target_s, repeats).items():
            results.rates[name, case] = rate
        results.qubits[case] = found.num_qubits
    return results.markdown()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Markdown tables of the qvae-core benchmarks.")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short run: 0.05 s calls, best of 3 (default 0.5 s, best of 5), and fewer seeds",
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="sections to run (default all)")
    args = parser.parse_args(argv)
    target_s, repeats = (0.05, 3) if args.quick else (0.5, 5)

    sections = {
        "gibbs": ("Block Gibbs", lambda: gibbs_report(target_s, repeats)),
        "anneal": ("Population annealing", lambda: anneal_results(_anneal_cases.CASES, args.quick).markdown()),
        "ctqmc": ("CT-QMC", lambda: ctqmc_report(target_s, repeats, args.quick)),
        "embedding": ("Minor embedding", lambda: embedding_report(target_s, repeats, args.quick)),
    }
    for key in SECTIONS:
        if key in args.only:
            title, report = sections[key]
            print(f"## {title}\n\n{report()}\n", flush=True)


if __name__ == "__main__":
    main()
