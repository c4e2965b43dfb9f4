"""Training-step time of the DVAE/QVAE with the negative phase scheduled by the default overlap "auto"
(each way timed at the start and every 250 steps, the faster kept), overlapped at every step
("always"), run after the networks ("never", --no-overlap), and left out (the networks alone), so that

    exposed sampling = step - network-only step       (what the sampler adds to a step)

for an RBM 64x64 prior (Gibbs) and a QBM 16x16 at Gamma = 1 (CT-QMC chains), 1000 PCD chains x 200
sweeps per step (paper 000's negative phase), at the package's default networks and at paper 000's
sizes (8 posterior heads of 2000-2000 ReLU units, decoder 250); and the QVAE step (QBM 16x16,
Gamma = 1) against the DVAE step with an RBM 16x16 prior on the same default networks, each with its
sampler's default sweeps (goal <= 1.2x).

    pytest benchmarks/test_dvae_benchmarks.py      pytest-benchmark, one round = one epoch of steps
    python benchmarks/test_dvae_benchmarks.py      the Markdown tables of the README (median of --rounds)

Modes are timed interleaved (A B C A B C ...) on the packaged MNIST subset (2000 images = 10 steps of
200), so that a busy machine slows them alike; compare ratios within a table, on one machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import numpy as np
import pytest

from qvae_core.torch_env import shorten_torch_spin

shorten_torch_spin()  # before torch loads, as `qvae-core train` does
torch = pytest.importorskip("torch")

from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.train import Trainer  # noqa: E402

BASE = {"groups": 8, "batch_size": 200, "negative_samples": 1000, "sweeps": 200, "sampler": "pcd", "epochs": 100}
PRIORS = {
    "RBM 64x64": {"prior": "rbm", "latent": "64x64"},
    "QBM 16x16, Gamma = 1": {"prior": "rbm", "latent": "16x16", "gamma": 1.0},
}
NETWORKS = {
    "default networks": {},
    "paper 000 networks": {"encoder_hidden": [2000, 2000], "decoder_hidden": [250]},
}
MODES = {"auto": "auto", "always": "always", "sequential": "never", "networks only": "never"}
# The comparison: QVAE at the package defaults against the DVAE with an RBM of the same size
QVAE_VS_DVAE = {"QVAE (QBM 16x16, Gamma = 1)": {"prior": "rbm", "latent": "16x16", "gamma": 1.0},
                "DVAE (RBM 16x16)": {"prior": "rbm", "latent": "16x16"}}


class _Replay:
    """A negative phase that costs nothing: the states of one real call, returned again (for the
    network-only step)."""

    def __init__(self, states: np.ndarray):
        self.states = states

    def sample(self, model):
        return self.states

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def make_trainer(fields: dict, mode: str, output) -> Trainer:
    """A warmed-up trainer (one epoch run: allocations, equilibrated chains) of `mode` (MODES)."""
    trainer = Trainer(TrainConfig(**{**BASE, **fields}, overlap=MODES[mode], output=str(output)))
    if mode == "networks only":
        prior = trainer.model.prior
        trainer.sampler = _Replay(trainer.sampler.sample(prior.numpy_model()))
    trainer.train_epoch()
    return trainer


def interleaved(trainers: dict, rounds: int) -> dict:
    """name -> median step seconds over `rounds` epochs, the trainers' epochs taken in turn."""
    times = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name].append(trainer.train_epoch()["step_seconds"])
    return {name: statistics.median(t) for name, t in times.items()}


def overlap_row(prior: str, networks: str, rounds: int, output) -> dict:
    fields = {**PRIORS[prior], **NETWORKS[networks]}
    trainers = {mode: make_trainer(fields, mode, f"{output}/{mode}") for mode in MODES}
    return interleaved(trainers, rounds)


def qvae_vs_dvae(rounds: int, output) -> dict:
    trainers = {name: make_trainer({**fields, "sweeps": 0}, "auto", f"{output}/{i}") for i, (name, fields) in
                enumerate(QVAE_VS_DVAE.items())}
    return interleaved(trainers, rounds)


@pytest.mark.parametrize("networks", NETWORKS)
@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("mode", MODES)
def test_dvae_training_step(benchmark, prior, networks, mode, tmp_path):
    trainer = make_trainer({**PRIORS[prior], **NETWORKS[networks]}, mode, tmp_path)
    epochs = []
    benchmark.pedantic(lambda: epochs.append(trainer.train_epoch()), rounds=3, iterations=1)
    benchmark.extra_info.update(step_ms=1e3 * statistics.median(m["step_seconds"] for m in epochs))


def test_qvae_step_against_the_dvae_step(benchmark, tmp_path):
    steps = benchmark.pedantic(lambda: qvae_vs_dvae(3, tmp_path), rounds=1, iterations=1)
    qvae, dvae = steps.values()
    benchmark.extra_info.update(qvae_ms=1e3 * qvae, dvae_ms=1e3 * dvae, ratio=qvae / dvae)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs of 10 steps timed per mode")
    parser.add_argument("--table", choices=("all", "overlap", "qvae"), default="all", help="which table to measure")
    parser.add_argument("--networks", choices=("all", *NETWORKS), default="all",
                        help="the overlap table's rows at these networks only")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} torch threads)"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"networks on {device}, {os.cpu_count()} cores, load average {load} at the start; "
          f"median step of {args.rounds} interleaved epochs\n")
    for prior in PRIORS if args.table != "qvae" else ():
        if prior == next(iter(PRIORS)):
            print("| prior | networks | auto (ms) | always (ms) | sequential (ms) | networks only (ms) "
                  "| auto / sequential | always / sequential | exposed sampling, auto | exposed sampling, sequential |\n"
                  "|---|---|---|---|---|---|---|---|---|---|")
        for networks in NETWORKS if args.networks == "all" else (args.networks,):
            with tempfile.TemporaryDirectory() as output:
                t = overlap_row(prior, networks, args.rounds, output)
            ms = {mode: 1e3 * t[mode] for mode in MODES}
            net, seq = ms["networks only"], ms["sequential"]
            exposed = {mode: (ms[mode] - net) / ms[mode] for mode in ("auto", "sequential")}
            print(f"| {prior} | {networks} | {ms['auto']:.0f} | {ms['always']:.0f} | {seq:.0f} | {net:.0f} "
                  f"| {ms['auto'] / seq:.2f} | {ms['always'] / seq:.2f} | {100 * exposed['auto']:.0f}% "
                  f"| {100 * exposed['sequential']:.0f}% |", flush=True)
    if args.table == "overlap":
        return
    with tempfile.TemporaryDirectory() as output:
        steps = qvae_vs_dvae(args.rounds, output)
    (qvae_name, qvae), (dvae_name, dvae) = steps.items()
    print(f"\n| default networks, overlap auto, default sweeps | step (ms) |\n|---|---|\n| {qvae_name} | {1e3 * qvae:.0f} |\n"
          f"| {dvae_name} | {1e3 * dvae:.0f} |\n| ratio (goal <= 1.2) | {qvae / dvae:.2f} |")


if __name__ == "__main__":
    main()
