"""Scaling from 1 to 2 processes on one machine: annealing runs/s on a Dask LocalCluster of 1 and of
2 single-threaded workers, and DVAE training steps/s per rank under torchrun with 1 and 2 processes
at equal per-rank batch. Markdown on stdout.

Usage: python benchmarks/scaling.py [--only {dask,torchrun} ...] [--runs R] [--repeats N]
Fairness: the C++ core threads over replicas, so each annealing task runs with num_threads=1 and each
worker has one Dask thread (one core per worker); under torchrun every rank has one torch thread
(OMP_NUM_THREADS=1) and its sampler cores // processes core threads (dvae/distributed.py), and the
1-process run is pinned to one core (taskset -c 0), so each rank has one core. Configurations are
timed in turn, round after round, and the medians are reported. On a shared machine the wall-clock
ratios follow the load; the work per run or step per CPU-second (also reported) does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import qvae_core as q
from qvae_core import distributed


def _worker_cpu_seconds(client) -> float:
    return sum(client.run(time.process_time).values())


def dask_rates(runs: int, repeats: int) -> tuple[dict, dict]:
    """Median runs/s of each cluster, and median runs per worker-CPU-second (the cores it used:
    equal for 1 and 2 workers when spreading costs nothing, whatever else loads the machine)."""
    from dask.distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    model = q.RBM(rng.normal(0, 0.1, (48, 48)), np.zeros(48), np.zeros(48))
    options = dict(population=1000, sweeps_per_step=5)
    rates, per_cpu = {1: [], 2: []}, {1: [], 2: []}
    clusters = {w: LocalCluster(n_workers=w, threads_per_worker=1, dashboard_address=":0") for w in (1, 2)}
    try:
        clients = {w: Client(c) for w, c in clusters.items()}
        for w, c in clients.items():  # warm up: imports and the model on every worker
            distributed.anneal(model, runs=w, seed=99, client=c, **options)
        for r in range(repeats):
            for w, c in clients.items():
                cpu, tick = _worker_cpu_seconds(c), time.perf_counter()
                distributed.anneal(model, runs=runs, seed=r, client=c, **options)
                rates[w].append(runs / (time.perf_counter() - tick))
                per_cpu[w].append(runs / (_worker_cpu_seconds(c) - cpu))
        for c in clients.values():
            c.close()
    finally:
        for c in clusters.values():
            c.close()
    return ({w: statistics.median(v) for w, v in rates.items()},
            {w: statistics.median(v) for w, v in per_cpu.items()})


def _train(n: int, epochs: int, seed: int, out: str) -> float:
    """Run `qvae_core train` under torchrun with n processes; the CPU seconds its processes used."""
    pin = ["taskset", "-c", "0"] if n == 1 else []
    cmd = [*pin, sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "qvae_core", "train", "--train-size", str(800 * n), "--valid-size", "20",
           "--batch-size", "50", "--epochs", str(epochs), "--eval-every", "1000", "--prior", "rbm",
           "--latent", "32x32", "--negative-samples", "200", "--sweeps", "20", "--log-z-population",
           "200", "--final-importance-samples", "1", "--seed", str(seed), "--output", out, "--no-progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def torchrun_rates(repeats: int) -> tuple[dict, dict]:
    """Training steps/s per rank from rank 0's step_seconds (the all-reduce makes every rank wait for
    the slowest), on the packaged subset: 800 images per rank, so 16 steps of 50 per rank and epoch;
    and rank-steps per CPU-second: the CPU time of 3 epochs less that of 1 (start-up, validation and
    the final evaluation cancel), for the 2 epochs' 2 x 16 x n steps of all n ranks."""
    import json

    rates, per_cpu = {1: [], 2: []}, {1: [], 2: []}
    for r in range(repeats):
        for n in (1, 2):
            with tempfile.TemporaryDirectory() as short, tempfile.TemporaryDirectory() as out:
                cpu = _train(n, 3, r, out) - _train(n, 1, r, short)
                lines = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
                rates[n].append(1.0 / statistics.median(m["step_seconds"] for m in lines))
                per_cpu[n].append(2 * 16 * n / cpu)
    return ({n: statistics.median(v) for n, v in rates.items()},
            {n: statistics.median(v) for n, v in per_cpu.items()})


def main() -> None:
    load = os.getloadavg()[0]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=("dask", "torchrun"), default=("dask", "torchrun"))
    parser.add_argument("--runs", type=int, default=16, help="annealing runs per timing")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| what | 1 process | 2 processes | ratio |\n|---|---|---|---|")
    if "dask" in args.only:
        r, cpu = dask_rates(args.runs, args.repeats)
        print(f"| annealing runs/s (RBM 48x48, population 1000, Dask workers) | {r[1]:.2f} | {r[2]:.2f} | "
              f"{r[2] / r[1]:.2f} |")
        print(f"| annealing runs per worker-CPU-second | {cpu[1]:.2f} | {cpu[2]:.2f} | {cpu[2] / cpu[1]:.2f} |")
    if "torchrun" in args.only:
        r, cpu = torchrun_rates(args.repeats)
        print(f"| training steps/s per rank (torchrun, batch 50 per rank) | {r[1]:.2f} | {r[2]:.2f} | "
              f"{r[2] / r[1]:.2f} |")
        print(f"| training rank-steps per CPU-second | {cpu[1]:.2f} | {cpu[2]:.2f} | {cpu[2] / cpu[1]:.2f} |")
    print(f"\nload average (1 min) before: {load:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
