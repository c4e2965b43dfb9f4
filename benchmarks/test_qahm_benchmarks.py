"""One wake-sleep epoch of the QAHM on USPS with paper 004's settings (hidden 120-60, all 7,291
training images per iteration, 1,000 generator samples) and the share of it spent sampling the
prior, for the prior's kinds: the K_60 embedded in Chimera C(16) and sampled by the classical
emulation (1,000 persistent block-Gibbs chains on the 960 physical qubits, 200 sweeps per iteration),
the gray-box physical model the same way, and the dense K_60 sampled as it is.

    pytest benchmarks/test_qahm_benchmarks.py      pytest-benchmark, one round = one epoch
    python benchmarks/test_qahm_benchmarks.py      a Markdown table (best of --rounds epochs)

Data: ../shared/data/usps (the full training set) when present, else the packaged 1,000 images.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pytest

from qvae_core.cli import shorten_torch_spin

shorten_torch_spin()  # before torch loads, as `qvae-core` does
torch = pytest.importorskip("torch")
pytest.importorskip("minorminer")

from qvae_core.qahm import QAHMConfig, Trainer, load_usps  # noqa: E402

SHARED_USPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "usps"
CASES = {
    "embedded K_60 on C(16), emulation (paper)": {"prior": "embedded"},
    "gray-box on C(16), emulation": {"prior": "gray-box"},
    "dense K_60, PCD": {"prior": "dense"},
}


def make_trainer(case: str, output, data=None) -> Trainer:
    """A trainer for `case` with the paper's defaults; train_epoch writes nothing to `output`."""
    data = data or (SHARED_USPS if (SHARED_USPS / "zip.train.gz").exists() else None)
    return Trainer(QAHMConfig(**CASES[case], output=str(output)), load_usps(data))


@pytest.mark.parametrize("case", CASES)
def test_qahm_epoch(benchmark, case, tmp_path):
    trainer = make_trainer(case, tmp_path)
    trainer.train_epoch()  # warm-up: allocations, first sweeps of the chains
    epochs = []
    benchmark.pedantic(lambda: epochs.append(trainer.train_epoch()), rounds=3, iterations=1)
    best = min(epochs, key=lambda m: m["seconds"])
    benchmark.extra_info.update(epoch_s=best["seconds"], sampling_share=best["sampling_share"],
                                images=trainer.train_pixels.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="epochs timed per case (after one warm-up)")
    parser.add_argument("--data", help="USPS data (default: ../shared/data/usps, else the packaged subset)")
    args = parser.parse_args()
    print("| prior | images | epoch (s) | sampling (s) | sampling share |\n|---|---:|---:|---:|---:|")
    for case in CASES:
        with tempfile.TemporaryDirectory() as output:
            trainer = make_trainer(case, output, args.data)
            trainer.train_epoch()
            best = min((trainer.train_epoch() for _ in range(args.rounds)), key=lambda m: m["seconds"])
        print(f"| {case} | {trainer.train_pixels.shape[0]} | {best['seconds']:.3f} | "
              f"{best['seconds'] * best['sampling_share']:.3f} | {100 * best['sampling_share']:.0f}% |", flush=True)


if __name__ == "__main__":
    main()
