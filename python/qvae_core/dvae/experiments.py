"""The runs behind docs/results.md: DVAEs with Bernoulli and RBM priors (one RBM 64x64 also trained on
the importance-weighted bound with K = 5) and QVAEs with a 16x16 QBM at Γ ∈ {1, 2} (Γ = 0 is the
RBM 16x16 run), all trained for the same number of epochs, then evaluated.

    python -m qvae_core.dvae.experiments --data ../shared/data/binarized_mnist.npz --epochs 10 \\
        --output runs/results [--only rbm-16x16 ...]

Each run trains in OUTPUT/NAME (resuming if a checkpoint is there) and is then evaluated once
(OUTPUT/NAME/results.json): the ELBO (a QBM's Q-ELBO) on every validation image, and on the first
--ll-images images the ELBO again with the LL from --importance-samples draws per image (classical
priors) or the true ELBO from log_diag (QBMs). Prints a Markdown table and the learning curves
(validation ELBO, or Q-ELBO, after each epoch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..torch_env import shorten_torch_spin

shorten_torch_spin()  # before torch loads, as `qvae-core train` does

from .config import TrainConfig  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .._training import CHECKPOINT, METRICS  # noqa: E402
from .train import Trainer  # noqa: E402

COMMON = {
    "batch_size": 200, "lr": 3e-3, "lr_decay": 0.9, "min_lr": 1e-4, "beta_start": 1.0, "beta_end": 10.0,
    "groups": 8, "encoder_hidden": [256, 256], "decoder_hidden": [256], "negative_samples": 1000, "sweeps": 200,
}
RUNS = {
    "bernoulli-32": {"prior": "bernoulli", "latent": "32"},
    "bernoulli-64": {"prior": "bernoulli", "latent": "64"},
    "bernoulli-128": {"prior": "bernoulli", "latent": "128"},
    "rbm-16x16": {"prior": "rbm", "latent": "16x16"},
    "rbm-32x32": {"prior": "rbm", "latent": "32x32"},
    "rbm-64x64": {"prior": "rbm", "latent": "64x64"},
    # the importance-weighted bound L_{5,1} as the training objective instead of the ELBO
    "rbm-64x64-k5": {"prior": "rbm", "latent": "64x64", "kd_schedule": [[5, 1]]},
    # CT-QMC chains cost ~10x a Gibbs sweep at these fields: 1000 chains x 20 sweeps per step
    "qbm-16x16-gamma1": {"prior": "rbm", "latent": "16x16", "gamma": 1.0, "sweeps": 20},
    "qbm-16x16-gamma2": {"prior": "rbm", "latent": "16x16", "gamma": 2.0, "sweeps": 20},
}


def run(name: str, args) -> dict:
    """Train (or finish) run `name`, then evaluate it once; returns its results."""
    output = Path(args.output) / name
    config = TrainConfig(**{**COMMON, **RUNS[name]}, data=args.data, epochs=args.epochs, seed=args.seed,
                         output=str(output))
    results_path = output / "results.json"
    if results_path.exists():
        results = json.loads(results_path.read_text())
        _check_same_run(output, TrainConfig.from_dict(results["config"]), config)
        if results["epoch"] == args.epochs:
            return results
    if (output / CHECKPOINT).exists():
        trainer = Trainer.resume(output, epochs=args.epochs)
        _check_same_run(output, trainer.config, config)
    else:
        trainer = Trainer(config)
    trainer.fit(progress=False, log=lambda line: print(f"{name}: {line}", flush=True))
    model, images = trainer.model, trainer.valid_images.numpy()
    log_z = model.prior.log_partition(population=args.log_z_population, seed=1)
    everything = evaluate(model, images, importance_samples=1, log_z=log_z, true_elbo=False, seed=2)
    head = evaluate(model, images[: args.ll_images], importance_samples=args.importance_samples, log_z=log_z, seed=3)
    results = {"name": name, "epoch": trainer.epoch, "all_images": everything, "head_images": head,
               "config": trainer.config.to_dict()}
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _check_same_run(output: Path, saved: TrainConfig, wanted: TrainConfig) -> None:
    """ValueError naming `output` and the settings where its saved run differs from the one asked for
    (all but epochs, which a resumed run may extend): a resume must not pass one run off as another."""
    saved_dict, wanted_dict = saved.to_dict(), wanted.to_dict()
    differ = sorted(key for key in wanted_dict if key != "epochs" and saved_dict.get(key) != wanted_dict[key])
    if differ:
        settings = ", ".join(f"{key} {saved_dict.get(key)!r} (asked {wanted_dict[key]!r})" for key in differ)
        raise ValueError(f"output: {output} holds another run ({settings}); use another --output")


def table(results: list) -> str:
    """One row per run: the bounds on all validation images and on the first ones (LL, true QBM ELBO)."""
    lines = ["| run | latent units | ELBO (all) | Q-ELBO (all) | ELBO (first) | LL (first) | log Z | active units |",
             "|---" * 8 + "|"]
    for r in results:
        every, head = r["all_images"], r["head_images"]
        quantum = "q_elbo" in every
        lines.append(" | ".join([
            f"| {r['name']}", str(every["num_latent"]),
            "—" if quantum else f"{every['elbo']:.2f} ± {every['elbo_stderr']:.2f}",
            f"{every['q_elbo']:.2f} ± {every['q_elbo_stderr']:.2f}" if quantum else "—",
            f"{head['elbo']:.2f} ± {head['elbo_stderr']:.2f}",
            "—" if quantum else f"{head['ll']:.2f} ± {head['ll_stderr']:.2f}",
            f"{every['log_z']:.3f} ± {every['log_z_std']:.3f}", f"{every['active_units']} |",
        ]))
    return "\n".join(lines)


def curves(output: Path, names: list) -> str:
    """Validation ELBO (Q-ELBO for QBMs) after each epoch, one column per run."""
    series = {}
    for name in names:
        lines = (output / name / METRICS).read_text().splitlines()
        series[name] = {m["epoch"]: m.get("val_elbo", m.get("val_q_elbo")) for m in map(json.loads, lines)}
    epochs = sorted({e for s in series.values() for e in s})
    rows = ["| epoch | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for e in epochs:
        rows.append(f"| {e} | " + " | ".join(f"{series[n][e]:.2f}" if e in series[n] else "" for n in names) + " |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset path (default: $QVAE_DATA, else the packaged subset)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (a run in --output with another seed is refused)")
    parser.add_argument("--output", default="runs/results")
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="runs to do (default: all)")
    parser.add_argument("--ll-images", type=int, default=1000)
    parser.add_argument("--importance-samples", type=int, default=1000)
    parser.add_argument("--log-z-population", type=int, default=10_000)
    args = parser.parse_args(argv)
    names = args.only or list(RUNS)
    results = [run(name, args) for name in names]
    print(table(results))
    print()
    print(curves(Path(args.output), names))


if __name__ == "__main__":
    main()
