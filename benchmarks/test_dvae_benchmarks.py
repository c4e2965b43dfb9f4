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

The modes of a row are epochs of one trainer taken in turn (A B C D A B C D ...; the samples are the
same in every mode) on the packaged MNIST subset (2000 images = 10 steps of 200), so that a busy
machine slows them alike and two trainers' memory layouts do not differ; the QVAE and the DVAE are
two trainers, interleaved the same way. Compare ratios within a table, on one machine.
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
from qvae_core.dvae.negative_phase import OverlapSchedule  # noqa: E402
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
MODES = ("auto", "always", "sequential", "networks only")
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


def make_trainer(fields: dict, output) -> Trainer:
    """A warmed-up trainer (one epoch run: allocations, equilibrated chains, the first trial of overlap "auto")."""
    trainer = Trainer(TrainConfig(**{**BASE, **fields}, overlap="auto", output=str(output)))
    trainer.train_epoch()
    return trainer


def interleaved(trainers: dict, rounds: int) -> dict:
    """name -> median step seconds over `rounds` epochs, the trainers' epochs taken in turn."""
    times = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name].append(trainer.train_epoch()["step_seconds"])
    return {name: statistics.median(t) for name, t in times.items()}


def timed_modes(trainer: Trainer, rounds: int) -> dict:
    """mode -> median step seconds over `rounds` epochs of one trainer, its epochs run in each mode (MODES)
    in turn: the samples are the same in every mode, so one model and one set of chains serve them all
    and no difference between two trainers' memory enters the ratios. The "auto" schedule is the one
    settled in the warm-up epoch; "networks only" replays one call's samples."""
    negative = trainer.negative_phase
    real = negative.sampler
    replay = _Replay(real.sample(trainer.model.prior.numpy_model()))
    schedules = {"auto": negative.schedule, "always": OverlapSchedule("always"),
                 "sequential": OverlapSchedule("never"), "networks only": OverlapSchedule("never")}
    times = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            negative.schedule = schedules[mode]
            negative.sampler = replay if mode == "networks only" else real
            times[mode].append(trainer.train_epoch()["step_seconds"])
    negative.schedule, negative.sampler = schedules["auto"], real
    return {mode: statistics.median(t) for mode, t in times.items()}


def overlap_row(prior: str, networks: str, rounds: int, output) -> tuple[dict, str]:
    trainer = make_trainer({**PRIORS[prior], **NETWORKS[networks]}, output)
    times = timed_modes(trainer, rounds)
    return times, "overlapped" if trainer.negative_phase.schedule.chosen else "sequential"


def qvae_vs_dvae(rounds: int, output) -> dict:
    trainers = {name: make_trainer({**fields, "sweeps": 0}, f"{output}/{i}") for i, (name, fields) in
                enumerate(QVAE_VS_DVAE.items())}
    return interleaved(trainers, rounds)


@pytest.mark.parametrize("networks", NETWORKS)
@pytest.mark.parametrize("prior", PRIORS)
def test_dvae_training_step(benchmark, prior, networks, tmp_path):
    rows = []
    benchmark.pedantic(lambda: rows.append(overlap_row(prior, networks, 3, tmp_path)), rounds=1, iterations=1)
    (times, chosen), = rows
    benchmark.extra_info.update({f"{mode} step_ms": 1e3 * t for mode, t in times.items()}, auto_ran=chosen)


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
            print("| prior | networks | auto (ms) | auto ran | always (ms) | sequential (ms) | networks only (ms) "
                  "| auto / sequential | always / sequential | exposed sampling, auto | exposed sampling, sequential |\n"
                  "|---|---|---|---|---|---|---|---|---|---|---|")
        for networks in NETWORKS if args.networks == "all" else (args.networks,):
            with tempfile.TemporaryDirectory() as output:
                t, chosen = overlap_row(prior, networks, args.rounds, output)
            ms = {mode: 1e3 * t[mode] for mode in MODES}
            net, seq = ms["networks only"], ms["sequential"]
            exposed = {mode: (ms[mode] - net) / ms[mode] for mode in ("auto", "sequential")}
            print(f"| {prior} | {networks} | {ms['auto']:.0f} | {chosen} | {ms['always']:.0f} | {seq:.0f} | {net:.0f} "
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
