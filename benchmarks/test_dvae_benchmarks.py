"""Training-step time of a DVAE with an RBM 64x64 prior (batch 200, 1000 PCD chains x 200 sweeps per
step, paper 000's negative phase) and the share of the step spent in the sampler (goal: <= 30%).

    pytest benchmarks/test_dvae_benchmarks.py      pytest-benchmark, one round = one epoch of steps
    python benchmarks/test_dvae_benchmarks.py      a Markdown table (best of --rounds epochs)

Steps run on the packaged MNIST subset (2000 images = 10 steps of 200); the networks are the
package defaults and paper 000's sizes (8 posterior heads of 2000-2000 ReLU units, decoder 250).
"""

from __future__ import annotations

import argparse
import tempfile

import pytest

from qvae_core.torch_env import shorten_torch_spin

shorten_torch_spin()  # before torch loads, as `qvae-core train` does
torch = pytest.importorskip("torch")

from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.train import Trainer  # noqa: E402

BASE = {"prior": "rbm", "latent": "64x64", "groups": 8, "batch_size": 200, "negative_samples": 1000,
        "sweeps": 200, "sampler": "pcd", "epochs": 100}
CASES = {
    "default networks (heads 256-256, decoder 256)": {},
    "paper 000 networks (heads 2000-2000, decoder 250)": {"encoder_hidden": [2000, 2000], "decoder_hidden": [250]},
}


def make_trainer(case: str, output) -> Trainer:
    """A trainer for `case`; train_epoch writes nothing to `output`."""
    return Trainer(TrainConfig(**BASE, **CASES[case], output=str(output)))


@pytest.mark.parametrize("case", CASES)
def test_dvae_training_step(benchmark, case, tmp_path):
    trainer = make_trainer(case, tmp_path)
    trainer.train_epoch()  # warm-up: allocations, equilibrating chains
    epochs = []
    benchmark.pedantic(lambda: epochs.append(trainer.train_epoch()), rounds=3, iterations=1)
    best = min(epochs, key=lambda m: m["step_seconds"])
    benchmark.extra_info.update(step_ms=1e3 * best["step_seconds"], sampling_share=best["sampling_share"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="epochs of 10 steps timed per case")
    args = parser.parse_args()
    print("| networks | step (ms) | sampling (ms) | sampling share |\n|---|---|---|---|")
    for case in CASES:
        with tempfile.TemporaryDirectory() as output:
            trainer = make_trainer(case, output)
            trainer.train_epoch()
            best = min((trainer.train_epoch() for _ in range(args.rounds)), key=lambda m: m["step_seconds"])
        step = 1e3 * best["step_seconds"]
        share = best["sampling_share"]
        print(f"| {case} | {step:.0f} | {step * share:.0f} | {100 * share:.0f}% |")


if __name__ == "__main__":
    main()
