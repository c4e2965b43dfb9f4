"""The `qvae-core` command line."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

import numpy as np

from .torch_env import shorten_torch_spin

__all__ = ["main"]


def _throughput(sampler, min_seconds: float = 1.0) -> float:
    """Sweeps per second of sampler.run, timed over at least min_seconds."""
    sampler.run(5)
    sweeps, start = 0, time.perf_counter()
    k = 5
    while (elapsed := time.perf_counter() - start) < min_seconds:
        sampler.run(k)
        sweeps += k
        k = min(2 * k, 1000)
    return sweeps / elapsed


def _compare(name, model, seed, num_chains=20000, burn_in=1000):
    import qvae_core as q

    samples = q.GibbsSampler(model, num_chains, seed=seed).run(burn_in).astype(float)
    exact = q.exact.marginals(model)
    se = np.sqrt(np.maximum(exact * (1 - exact), 1.0 / num_chains) / num_chains)
    dev = np.abs(samples.mean(axis=0) - exact)
    print(
        f"{name:<34} units={model.num_units:<4} max|marginal - exact|={dev.max():.4f} "
        f"({(dev / se).max():.1f} standard errors, {num_chains} chains x {burn_in} sweeps)"
    )


def demo(args) -> int:
    import qvae_core as q

    rng = np.random.default_rng(args.seed)
    print(f"qvae-core {q.__version__}: block Gibbs against exact enumeration ({q.max_threads()} threads)")
    rbm = q.RBM(rng.normal(0, 1, (8, 12)), rng.normal(0, 0.5, 8), rng.normal(0, 0.5, 12))
    _compare("RBM 8x12, weights N(0,1)", rbm, args.seed)
    chimera = q.graphs.chimera(1, 2)
    bm = q.graphs.random_boltzmann_machine(chimera, weight_scale=1.5, bias_scale=0.5, seed=args.seed)
    _compare("Chimera C(1,2,4) BM, weights N(0,1.5^2)", bm, args.seed)

    print("\nthroughput, 1000 persistent chains:")
    for n in (32, 64, 128, 256):
        model = q.RBM(rng.normal(0, 0.1, (n, n)), np.zeros(n), np.zeros(n))
        sps = _throughput(q.GibbsSampler(model, 1000, seed=args.seed), args.seconds)
        print(f"  RBM {n}x{n:<4}      {sps:10.0f} sweeps/s  {4e3 * n * n * sps / 1e9:6.1f} GFLOP/s-equivalent")
    pegasus = q.graphs.random_boltzmann_machine(q.graphs.pegasus(4), seed=args.seed)
    sps = _throughput(q.GibbsSampler(pegasus, 1000, seed=args.seed), args.seconds)
    print(f"  Pegasus P(4) BM ({pegasus.num_units} units, {pegasus.num_colors} colours) {sps:8.0f} sweeps/s")
    return 0


def _register_demo(sub) -> None:
    p = sub.add_parser("demo", help="sample an RBM and a Chimera BM, compare with exact marginals, time it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=1.0, help="time per throughput measurement")
    p.set_defaults(func=demo)


# Each entry adds its subcommands; modules import their heavy dependencies (torch,
# dwave-cloud-client) only when a command runs, so `qvae-core demo` needs numpy alone.
_SUBCOMMANDS = ["qvae_core.cli:_register_demo", "qvae_core.dvae.cli:register", "qvae_core.dwave.cli:register",
                "qvae_core.qahm.cli:register"]


def main(argv=None) -> int:
    shorten_torch_spin()
    parser = argparse.ArgumentParser(prog="qvae-core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for entry in _SUBCOMMANDS:
        module, name = entry.split(":")
        getattr(importlib.import_module(module), name)(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:
        # Bad input, or a D-Wave set-up the client refuses (no such solver, no configuration): one
        # line naming it, not a traceback. Anything else is a bug and keeps its traceback.
        if not isinstance(exc, (ValueError, FileNotFoundError)) and not type(exc).__module__.startswith("dwave.cloud"):
            raise
        print(f"qvae-core {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
