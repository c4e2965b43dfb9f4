"""`qvae-core train | evaluate | sample`: the DVAE/QVAE commands.

Registering them imports nothing heavy (config is torch-free); torch is imported when a command
runs, so `qvae-core demo` works without it. `train` takes every TrainConfig field as a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..annealing import LOG_Z_POPULATION, MIN_POPULATION
from .._commands import at_least, lock_if_in_run, read_json, run_directory, write_json
from .._fields import add_config_flags, field_type
from .config import QUICK, TrainConfig
from .presets import PRESETS, TABLES, preset_values

__all__ = ["register"]

_DEVICE_HELP = "torch device: auto (CUDA when available) | cpu | cuda | cuda:N (default: auto)"


def register(subparsers) -> None:
    """Add the train, evaluate and sample subcommands to the `qvae-core` parser."""
    train = subparsers.add_parser(
        "train",
        help="train a DVAE/QVAE (flags or --config JSON; --quick for a short run; --preset for a paper's; --resume)",
        description="Train a DVAE/QVAE. Values come from --quick or --preset, then --config, then the flags.",
    )
    train.add_argument("--preset", help="a row of a paper's table (--list-presets); flags given override it")
    train.add_argument("--list-presets", action="store_true", help="print the presets with their sources and exit")
    train.add_argument("--config", help="JSON file of config fields")
    train.add_argument("--quick", action="store_true",
                       help="short preset run on the packaged subset (without --output, replaces its earlier run)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --output from its checkpoint (only --epochs, --eval-every, "
                            "--checkpoint-every, --final-importance-samples, --data, --tensorboard, --device "
                            "and --overlap may change)")
    train.add_argument("--overwrite", action="store_true", help="replace a run that --output already holds")
    train.add_argument("--reseed-chains", action="store_true",
                       help="with --resume under torchrun: resume with another number of processes than wrote the "
                            "checkpoint; the ranks it lacks start new chains (with a warning)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--no-overlap", dest="overlap", action="store_const", const="never",
                       default=argparse.SUPPRESS, help="the same as --overlap never (to compare)")
    add_config_flags(train, TrainConfig)
    train.set_defaults(func=_train)

    experiments = subparsers.add_parser(
        "experiments", help="run a paper's table (every row x seed, resumable) and write ours beside its numbers",
        description="Train every row of a paper's table (presets; --list-presets of train) once per seed, resuming "
                    "what --output holds, evaluate each on the split the paper reports, and write OUTPUT/TABLE.md "
                    "with the paper's numbers beside ours (mean ± standard error over seeds).")
    experiments.add_argument("--table", required=True, choices=sorted(TABLES))
    experiments.add_argument("--epochs", type=at_least(1), help="epochs of every row (default: the paper's)")
    experiments.add_argument("--seeds", type=at_least(1), help="training runs per row, seeds 0..S-1 "
                                                                "(default: as many as the paper averaged)")
    experiments.add_argument("--output", default="runs/experiments", help="directory of the runs and TABLE.md")
    experiments.add_argument("--data", help="dataset (default: $QVAE_DATA, else the packaged subset)")
    experiments.add_argument("--rows", nargs="+", metavar="PRESET", help="only these rows of the table")
    experiments.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                             help="a config field set in every row (a smaller budget: train_size=1000); repeatable")
    experiments.add_argument("--importance-samples", type=at_least(1), help="K of the LL (default: the paper's)")
    experiments.add_argument("--eval-images", type=at_least(0), default=0, help="first N images of the split (0: all)")
    experiments.add_argument("--log-z-population", type=at_least(MIN_POPULATION), default=10_000)
    experiments.add_argument("--log-diag-population", type=at_least(MIN_POPULATION), default=200,
                             help="QBM: population of log_diag for the true ELBO")
    experiments.set_defaults(func=_experiments)

    evaluate = subparsers.add_parser(
        "evaluate", help="ELBO, IW log-likelihood, QBM bounds, active units -> JSON",
        description="Evaluate a saved run on a split; writes evaluation-SPLIT-KK-seedS[-nN].json beside the "
                    "checkpoint (refused if it exists, unless --overwrite). Interrupted, it resumes when run again.")
    evaluate.add_argument("checkpoint", help="checkpoint.pt or a run directory")
    evaluate.add_argument("--data", help="dataset (default: the one the run was trained on)")
    evaluate.add_argument("--split", choices=("valid", "test"), default="valid", help="images to evaluate on")
    evaluate.add_argument("--num-images", type=at_least(0), default=0, help="first N images of the split (0: all)")
    evaluate.add_argument("--importance-samples", type=at_least(1), default=1000, help="K per image for the LL")
    evaluate.add_argument("--log-z-population", type=at_least(MIN_POPULATION), default=LOG_Z_POPULATION,
                          help="population of the log Z annealing")
    evaluate.add_argument("--log-diag-population", type=at_least(MIN_POPULATION), default=200,
                          help="QBM: population of log_diag")
    evaluate.add_argument("--seed", type=at_least(0), default=0)
    evaluate.add_argument("--output", help="JSON file (default: named by the settings, beside the checkpoint)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument("--device", default="auto", help=_DEVICE_HELP)
    evaluate.set_defaults(func=_evaluate)

    sample = subparsers.add_parser("sample", help="write a PNG grid of digits generated from the prior")
    sample.add_argument("checkpoint", help="checkpoint.pt or a run directory")
    sample.add_argument("--num-samples", type=at_least(1), default=100)
    sample.add_argument("--columns", type=at_least(1), default=10)
    sample.add_argument("--seed", type=at_least(0), default=0)
    sample.add_argument("--output", help="PNG file (default: samples-seedS-nN.png beside the checkpoint)")
    sample.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    sample.add_argument("--device", default="auto", help=_DEVICE_HELP)
    sample.set_defaults(func=_sample)


def _train(args) -> int:
    if args.list_presets:
        _list_presets()
        return 0
    if args.quick and args.preset:
        raise ValueError("--quick and --preset: choose one")
    if args.reseed_chains and not args.resume:
        raise ValueError("--reseed-chains applies to --resume only")
    start = preset_values(args.preset) if args.preset is not None else dict(QUICK) if args.quick else {}

    from .train import Trainer

    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if args.resume:
        if args.config or args.overwrite:
            raise ValueError("--resume continues the saved run: --config and --overwrite do not apply")
        output = flags.pop("output", start.get("output", TrainConfig.output))
        # (which refuses flags that would change the run)
        trainer = Trainer.resume(output, reseed_chains=args.reseed_chains, **flags)
    else:
        values = start
        if args.config:
            values.update(read_json(args.config))
        values.update(flags)
        # --quick is a demonstration: run again into its own directory, it replaces its earlier run
        trainer = Trainer(TrainConfig.from_dict(values), overwrite=args.overwrite or (args.quick and "output" not in flags))
    main = trainer.ranks.main  # under torchrun, rank 0 speaks for the run
    if args.preset is not None and main:
        print(f"preset {args.preset}: {PRESETS[args.preset].source}; the paper's data: {PRESETS[args.preset].data}")
    if main:
        processes = f" with {trainer.ranks.world_size} processes" if trainer.ranks.world_size > 1 else ""
        print(f"training {_describe(trainer.config)} on {trainer.data.train.shape[0]} images of "
              f"{trainer.data.source}{processes}")
    try:
        trainer.fit(progress=not args.no_progress)
        # the run's own log Z population and seeds (Trainer.validate), not evaluate's defaults; every rank's images
        metrics = trainer.validate(importance_samples=trainer.config.final_importance_samples)
    finally:
        trainer.close()
    trainer.ranks.leave()  # (the last collective is done)
    if not main:
        return 0
    write_json(metrics, trainer.output / "evaluation.json")
    _print_metrics(metrics)
    paths = _write_grids(trainer.model, trainer.valid_images.numpy(), trainer.data.image_shape, trainer.output,
                         seed=trainer.config.seed)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _overrides(pairs: list) -> dict:
    """['train_size=1000', ...] -> {'train_size': 1000, ...}, each value read as its field's flag is."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise ValueError(f"--set: expected FIELD=VALUE with a config field, got {pair!r}")
        try:
            values[name] = field_type(fields[name])(text)
        except ValueError:
            raise ValueError(f"--set: {pair!r} is not a valid value of {name}") from None
    return values


def _experiments(args) -> int:
    from .experiments import Budget, run_table

    budget = Budget(epochs=args.epochs, seeds=args.seeds, data=args.data, overrides=_overrides(args.overrides),
                    importance_samples=args.importance_samples, eval_images=args.eval_images,
                    log_z_population=args.log_z_population, log_diag_population=args.log_diag_population)
    print(run_table(args.table, budget, args.output, args.rows, log=lambda line: print(line, flush=True)))
    print(f"wrote {Path(args.output) / (args.table + '.md')}")
    return 0


def _list_presets() -> None:
    for name, p in PRESETS.items():
        print(f"{name:<30} {p.source}")


def _evaluate(args) -> int:
    from .distributed import Ranks
    from .run_evaluation import evaluate_run

    ranks = Ranks.from_environment()  # under torchrun: the images spread over the ranks, rank 0 writes
    written_into = Path(args.output).parent if args.output else run_directory(args.checkpoint)
    lock = lock_if_in_run(args.checkpoint, written_into) if ranks.main else None  # held to the end
    metrics, path = evaluate_run(
        args.checkpoint, args.split, data=args.data, importance_samples=args.importance_samples,
        num_images=args.num_images, seed=args.seed, log_z_population=args.log_z_population,
        log_diag_population=args.log_diag_population, device=args.device, output=args.output,
        overwrite=args.overwrite, progress=not args.no_progress, ranks=ranks)
    ranks.leave()  # (the last collective is done)
    if not ranks.main:
        return 0
    _print_metrics(metrics, args.split)
    print(f"wrote {path}")
    return 0


def _sample(args) -> int:
    from .train import load_checkpoint

    output = (Path(args.output) if args.output else
              run_directory(args.checkpoint) / f"samples-seed{args.seed}-n{args.num_samples}.png")
    lock = lock_if_in_run(args.checkpoint, output.parent)  # held to the end of the command
    if output.exists() and not args.overwrite:
        raise ValueError(f"output: {output} exists; choose another --output or replace it (--overwrite)")
    _, model, state = load_checkpoint(args.checkpoint, args.device)
    path = _write_samples(model, tuple(state["image_shape"]), output, args.num_samples, args.columns, args.seed)
    print(f"wrote {path}")
    return 0


def _write_samples(model, image_shape, path: Path, num_samples: int, columns: int, seed: int) -> Path:
    import torch

    from .images import save_grid

    device = next(model.parameters()).device
    z = torch.from_numpy(model.prior.sample(num_samples, seed=seed)).float().to(device)
    pixels = model.generate(z, torch.Generator(device=device).manual_seed(seed))
    return save_grid(pixels.cpu().numpy(), image_shape, path, columns=columns)


def _write_grids(model, images, image_shape, directory: Path, *, seed: int) -> list:
    """samples.png (from the prior) and reconstructions.png (rows alternate data and reconstructions)."""
    import torch

    from .images import save_grid

    model.eval()
    columns = min(10, len(images))
    device = next(model.parameters()).device
    x = torch.from_numpy(images[: min(50, len(images)) // columns * columns])
    recon = model.reconstruct(x.to(device), torch.Generator(device=device).manual_seed(seed)).cpu()
    rows = x.shape[0] // columns
    pairs = torch.stack([x.view(rows, columns, -1), recon.view(rows, columns, -1)], dim=1).flatten(0, 2)
    return [
        _write_samples(model, image_shape, directory / "samples.png", 100, 10, seed),
        save_grid(pairs.numpy(), image_shape, directory / "reconstructions.png", columns=columns,
                  row_labels=["data", "reconstruction"]),
    ]


def _print_metrics(m: dict, split: str = "valid") -> None:
    log_z = f"log Z {m['log_z']:.3f} ± {m['log_z_std']:.3f}"
    name = {"valid": "validation", "test": "test      "}[split]
    lines = []
    if "q_elbo" in m:
        lines.append(f"{name} Q-ELBO {m['q_elbo']:.3f} ± {m['q_elbo_stderr']:.3f} (Gamma = {m['gamma']:g})")
    if "elbo" in m:
        lines.append(f"{name} ELBO   {m['elbo']:.3f} ± {m['elbo_stderr']:.3f}")
    if "ll" in m:
        lines.append(f"{name} LL     {m['ll']:.3f} ± {m['ll_stderr']:.3f} (images) "
                     f"± {m['log_z_std']:.3f} (log Z), K = {m['importance_samples']}")
    lines.append(f"{log_z}; active units {m['active_units']}/{m['num_latent']}; {m['num_images']} images")
    print("\n".join(lines))


def _describe(config) -> str:
    quantum = f" Gamma={config.gamma:g}" if config.gamma > 0 else ""
    return (f"{config.prior} {config.latent}{quantum} prior, {config.smoothing} smoothing, "
            f"{config.encoder} networks, {config.sampler} sampler, {config.epochs} epochs")


