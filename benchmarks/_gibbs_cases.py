"""Shared pieces of the block-Gibbs benchmarks (pytest suite and report.py).

Models, the PyTorch reference sweeps, numpy's SGEMM kernel, round calibration and the
Markdown summary, so that both entry points measure and report exactly the same thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import qvae_core as q

try:
    import torch
except ImportError:  # torch is an optional extra: its reference rows are then skipped
    torch = None

NUM_CHAINS = 1000
RBM_SIZES = (32, 64, 128, 256)
GRAPHS = {"pegasus(4)": lambda: q.graphs.pegasus(4), "zephyr(3)": lambda: q.graphs.zephyr(3)}  # 264, 336 units
SGEMM_SHAPE = (NUM_CHAINS, 256, 256)  # (M, K, N) of the float32 product compared with 256x256
GOALS = (  # (case name, minimum qvae-core / torch sweeps-per-second ratio), from the issue
    ("32x32", 5.0),
    ("256x256", 3.0),
)
SGEMM_GOAL = ("256x256", 0.5)  # minimum fraction of the SGEMM rate reached by qvae-core


@dataclass(frozen=True)
class Case:
    """A benchmarked model: an n x n RBM (size = n) or a random BM on the topology GRAPHS[name]."""

    name: str
    size: int | None = None

    def model(self):
        """A fresh model with seed 0."""
        return graph_bm(self.name) if self.size is None else random_rbm(self.size)

    @property
    def flops_per_sweep(self) -> float | None:
        """4 C nv nh (two C x nv x nh products per sweep) for an RBM, None for a BM."""
        return None if self.size is None else 4.0 * NUM_CHAINS * self.size * self.size


CASES = tuple(Case(f"{n}x{n}", n) for n in RBM_SIZES) + tuple(Case(name) for name in GRAPHS)


def random_rbm(
    num_visible: int, num_hidden: int | None = None, *, weight_std: float = 0.1, bias_std: float = 0.01, seed: int = 0
) -> q.RBM:
    """RBM with N(0, weight_std^2) weights and N(0, bias_std^2) biases; square when num_hidden is None."""
    num_hidden = num_visible if num_hidden is None else num_hidden
    rng = np.random.default_rng(seed)
    return q.RBM(
        rng.normal(0.0, weight_std, (num_visible, num_hidden)),
        rng.normal(0.0, bias_std, num_visible),
        rng.normal(0.0, bias_std, num_hidden),
    )


def graph_bm(name: str, seed: int = 0) -> q.BoltzmannMachine:
    """Random BM (unit weight scale, 0.1 bias scale) on the working graph GRAPHS[name], with the
    topology's own colouring (4 colours, so 4 blocks per sweep)."""
    return q.graphs.random_boltzmann_machine(GRAPHS[name](), weight_scale=1.0, bias_scale=0.1, seed=seed)


class TorchRBMGibbs:
    """The obvious float32 torch block-Gibbs sweep: h ~ p(h|v), then v ~ p(v|h)."""

    def __init__(self, rbm: q.RBM, num_chains: int, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.W = torch.tensor(rbm.weights, dtype=torch.float32)
        self.a = torch.tensor(rbm.visible_bias, dtype=torch.float32)
        self.b = torch.tensor(rbm.hidden_bias, dtype=torch.float32)
        self.v = torch.bernoulli(torch.full((num_chains, rbm.num_visible), 0.5), generator=self.generator)

    @torch.no_grad()
    def run(self, num_sweeps: int) -> None:
        v, W, g = self.v, self.W, self.generator
        for _ in range(num_sweeps):
            h = torch.bernoulli(torch.sigmoid(v @ W + self.b), generator=g)
            v = torch.bernoulli(torch.sigmoid(h @ W.T + self.a), generator=g)
        self.v = v


class TorchBMGibbs:
    """Torch sweep over the colour classes of a sparse BM, one dense masked matmul per class.

    Units are permuted so that each colour class is a contiguous slice of the state; the
    coupling matrix is dense and symmetric, zero off the graph.
    """

    def __init__(self, bm: q.BoltzmannMachine, num_chains: int, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        order = np.argsort(bm.colors, kind="stable")
        position = np.empty_like(order)
        position[order] = np.arange(order.size)
        i, j = position[bm.edges[:, 0]], position[bm.edges[:, 1]]
        J = np.zeros((bm.num_units, bm.num_units), dtype=np.float32)
        J[i, j] = J[j, i] = bm.weights
        bias = bm.bias[order].astype(np.float32)
        bounds = np.searchsorted(bm.colors[order], np.arange(bm.num_colors + 1))
        self.blocks = [
            (lo, hi, torch.from_numpy(J[:, lo:hi].copy()), torch.from_numpy(bias[lo:hi].copy()))
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        self.z = torch.bernoulli(torch.full((num_chains, bm.num_units), 0.5), generator=self.generator)

    @torch.no_grad()
    def run(self, num_sweeps: int) -> None:
        z, g = self.z, self.generator
        for _ in range(num_sweeps):
            for lo, hi, J, bias in self.blocks:
                z[:, lo:hi] = torch.bernoulli(torch.sigmoid(z @ J + bias), generator=g)


def qvae_runner(model):
    """run(k) of a qvae-core GibbsSampler on NUM_CHAINS chains (all cores)."""
    return q.GibbsSampler(model, NUM_CHAINS, seed=0).run


def torch_runner(model):
    """run(k) of the torch reference on NUM_CHAINS chains (torch's default thread count)."""
    reference = TorchRBMGibbs if isinstance(model, q.RBM) else TorchBMGibbs
    return reference(model, NUM_CHAINS).run


RUNNERS = {"qvae-core": qvae_runner, "torch": torch_runner}


def sgemm_runner():
    """run(k) doing k float32 products of shape SGEMM_SHAPE with numpy (its BLAS, all cores)."""
    m, k, n = SGEMM_SHAPE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)

    def run(num_products: int) -> None:
        for _ in range(num_products):
            np.matmul(a, b, out=out)

    return run


SGEMM_FLOPS = 2.0 * SGEMM_SHAPE[0] * SGEMM_SHAPE[1] * SGEMM_SHAPE[2]  # per product


def calibrate(run, target_s: float) -> int:
    """Smallest power of two k for which run(k) takes at least target_s (warms up on the way)."""
    k = 1
    while True:
        start = time.perf_counter()
        run(k)
        if time.perf_counter() - start >= target_s:
            return k
        k *= 2


def best_rate(run, target_s: float, repeats: int) -> float:
    """Units of run (sweeps, products) per second: best of `repeats` timed run(k) of ~target_s."""
    return best_rates({None: run}, target_s, repeats)[None]


def best_rates(runs: dict, target_s: float, repeats: int) -> dict:
    """best_rate of each of `runs` (name -> run), timed in turn in each of `repeats` rounds, so that
    a slow spell of the machine touches all of them rather than one: their ratios stay fair."""
    sizes = {name: calibrate(run, target_s) for name, run in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(sizes[name])
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: sizes[name] / best[name] for name in runs}


BENCHMARK_ROUND_S = 0.05  # target duration of a pytest-benchmark round of sweeps
BENCHMARK_ROUNDS = 10


def benchmark_best_rate(benchmark, run) -> float | None:
    """pytest-benchmark rounds of run(k); k / best round time, or None when disabled (one call, k = 1)."""
    k = calibrate(run, BENCHMARK_ROUND_S) if benchmark.enabled else 1
    benchmark.pedantic(run, args=(k,), rounds=BENCHMARK_ROUNDS, warmup_rounds=1)
    if benchmark.enabled:
        benchmark.extra_info["per_round"] = k
        return k / benchmark.stats.stats.min
    return None


@dataclass
class Results:
    """Measured rates: rates[(runner name, case name)] = sweeps/s, and numpy's SGEMM GFLOP/s."""

    rates: dict = field(default_factory=dict)
    sgemm_gflops: float | None = None

    @property
    def measured(self) -> bool:
        return bool(self.rates or self.sgemm_gflops)

    def markdown(self) -> str:
        """Markdown table of the rates, then whether each goal of the issue is met."""
        lines = [
            f"{NUM_CHAINS} chains; qvae-core on {q.max_threads()} threads"
            + ("" if torch is None else f", torch {torch.__version__} on {torch.get_num_threads()} threads")
            + f"; numpy SGEMM {'x'.join(map(str, SGEMM_SHAPE))}: {fmt(self.sgemm_gflops, '.1f')} GFLOP/s",
            "",
            "| size | qvae-core sweeps/s | torch sweeps/s | ratio | qvae GFLOP/s-equiv | % of SGEMM |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        ratios, fractions = {}, {}
        for case in CASES:
            ours, ref = self.rates.get(("qvae-core", case.name)), self.rates.get(("torch", case.name))
            gflops = ours * case.flops_per_sweep / 1e9 if ours and case.flops_per_sweep else None
            ratios[case.name] = ours / ref if ours and ref else None
            fractions[case.name] = gflops / self.sgemm_gflops if gflops and self.sgemm_gflops else None
            percent = None if fractions[case.name] is None else 100 * fractions[case.name]
            lines.append(
                f"| {case.name} | {fmt(ours, ',.0f')} | {fmt(ref, ',.0f')} | {fmt(ratios[case.name], '.2f')}"
                f" | {fmt(gflops, '.1f')} | {fmt(percent, '.0f')} |"
            )
        lines.append("")
        checks = [(f"qvae-core >= {goal:g}x torch at {name}", ratios[name], goal) for name, goal in GOALS]
        name, goal = SGEMM_GOAL
        checks.append((f"qvae-core >= {goal:.0%} of SGEMM at {name}", fractions[name], goal))
        for label, value, goal in checks:
            verdict = "not measured" if value is None else ("met" if value >= goal else "NOT met")
            lines.append(f"- {label}: {verdict}")
        return "\n".join(lines)


def fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)
