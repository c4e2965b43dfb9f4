"""`qvae-core qahm train | evaluate | sample`: the quantum-assisted Helmholtz machine commands.

Conventions as `qvae-core train`: every QAHMConfig field is a flag (--quick, then --config, then the
flags), progress on a terminal, checkpoints and --resume, an existing run is replaced only with
--overwrite, PNG grids, and bad input is one line naming it with exit status 2 (qvae_core.cli.main).
Registering imports nothing heavy; torch is imported when a command runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .._commands import at_least, lock_if_in_run, read_json, run_directory, write_json
from .._fields import add_config_flags
from .config import QUICK, QAHMConfig

__all__ = ["register"]


def register(subparsers) -> None:
    """Add `qahm` with its train, evaluate and sample subcommands to the `qvae-core` parser."""
    qahm = subparsers.add_parser("qahm", help="quantum-assisted Helmholtz machine on USPS digits (paper 004)",
                                 description="Quantum-assisted Helmholtz machine (paper 004): train | evaluate | sample")
    commands = qahm.add_subparsers(dest="qahm_command", required=True)

    train = commands.add_parser("train", help="wake-sleep training (flags or --config JSON; --quick; --resume)",
                                description="Train a QAHM. Values come from --quick, then --config, then the flags; "
                                            "the defaults are paper 004's run.")
    train.add_argument("--config", help="JSON file of config fields")
    train.add_argument("--quick", action="store_true",
                       help="short run on the packaged subset (without --output, replaces its earlier run)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --output (only --epochs, --eval-every, --checkpoint-every and "
                            "--data may change)")
    train.add_argument("--overwrite", action="store_true", help="replace a run that --output already holds")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(train, QAHMConfig)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="test bound, accuracy, reconstruction error -> JSON")
    evaluate.add_argument("run", help="run directory or its checkpoint.pt")
    evaluate.add_argument("--data", help="USPS data (default: the run's)")
    evaluate.add_argument("--num-images", type=at_least(0), default=0, help="first N test images (0: all)")
    evaluate.add_argument("--log-z-population", type=at_least(20), default=4000,
                          help="population of the log Z annealing")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--output", help="JSON file (default: evaluation.json in the run directory)")
    evaluate.set_defaults(func=_evaluate)

    sample = commands.add_parser("sample", help="generated digits, their nearest training images and classes (PNG)")
    sample.add_argument("run", help="run directory or its checkpoint.pt")
    sample.add_argument("--data", help="USPS data for the nearest neighbours (default: the run's)")
    sample.add_argument("--num-samples", type=at_least(1), default=100)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--output", help="directory of the PNG files (default: the run directory)")
    sample.set_defaults(func=_sample)


def _train(args) -> int:
    from .train import Trainer

    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(QAHMConfig) if hasattr(args, f.name)}
    if args.resume:
        if args.config or args.overwrite:
            raise ValueError("--resume continues the saved run: --config and --overwrite do not apply")
        output = flags.pop("output", QUICK["output"] if args.quick else QAHMConfig.output)
        trainer = Trainer.resume(output, **flags)
    else:
        values = dict(QUICK) if args.quick else {}
        if args.config:
            values.update(read_json(args.config))
        values.update(flags)
        trainer = Trainer(QAHMConfig.from_dict(values),
                          overwrite=args.overwrite or (args.quick and "output" not in flags))
    c = trainer.config
    where = f" on {trainer.embedding.num_qubits} qubits of {trainer.embedding.topology.name}" if trainer.embedding else ""
    print(f"training a QAHM {'-'.join(map(str, c.hidden))} with a {c.prior} prior{where} ({c.sampler}), "
          f"{c.epochs} epochs on {trainer.data.train_pixels.shape[0]} images of {trainer.data.source}")
    trainer.fit(progress=not args.no_progress)
    metrics = trainer.evaluate()  # the last epoch's, reused
    paths, generated = _figures(trainer.model, trainer.data.train_pixels, trainer.output, c.seed,
                                annealed=trainer.annealed_prior())
    metrics.update(generated)
    write_json(metrics, trainer.output / "evaluation.json")
    _print(metrics)
    print("wrote " + ", ".join(str(p) for p in [trainer.output / "evaluation.json", *paths]))
    return 0


def _load(args):
    from .data import load_usps
    from .train import load_checkpoint

    config, model, _ = load_checkpoint(args.run)
    data = load_usps(args.data if args.data is not None else config.data).subset(config.train_size, config.test_size)
    return config, model, data


def _evaluate(args) -> int:
    from .evaluation import evaluate

    output = Path(args.output) if args.output else run_directory(args.run) / "evaluation.json"
    lock = lock_if_in_run(args.run, output.parent)  # held to the end of the command
    config, model, data = _load(args)
    n = args.num_images or None
    metrics = evaluate(model, data.test_pixels[:n], data.test_labels[:n], log_z_population=args.log_z_population,
                       classical=config.sampler != "qpu", seed=args.seed)
    write_json(metrics, output)
    _print(metrics)
    print(f"wrote {output}")
    return 0


def _sample(args) -> int:
    directory = Path(args.output) if args.output else run_directory(args.run)
    lock = lock_if_in_run(args.run, directory)  # held to the end of the command
    config, model, data = _load(args)
    paths, generated = _figures(model, data.train_pixels, directory, args.seed, args.num_samples)
    print(f"generated classes (0-9): {generated['generated_class_counts']}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _figures(model, train_pixels, directory, seed, num_samples=100, annealed=None):
    from .evaluation import write_figures

    return write_figures(model, train_pixels, directory, num_samples=num_samples, seed=seed, annealed=annealed)


def _print(m: dict) -> None:
    lines = []
    if "bound" in m:
        lines.append(f"test wake-sleep bound (Eq. 5) {m['bound']:.3f} ± {m['bound_stderr']:.3f}, "
                     f"ELBO (Eq. 3) {m['elbo']:.3f} ± {m['elbo_stderr']:.3f}, log Z {m['log_z']:.3f} ± {m['log_z_std']:.3f}")
    lines.append(f"test accuracy {100 * m['accuracy']:.1f}%, reconstruction MSE {m['reconstruction_mse']:.4f} "
                 f"({m['num_images']} images)")
    print("\n".join(lines))
