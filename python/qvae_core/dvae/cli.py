"""`qvae-core train | evaluate | sample`: the DVAE/QVAE commands.

Registering them imports nothing heavy (config is torch-free); torch is imported when a command
runs, so `qvae-core demo` works without it. `train` takes every TrainConfig field as a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..annealing import LOG_Z_POPULATION, MIN_POPULATION
from .._commands import at_least, read_json, run_directory, write_json
from .config import QUICK, TrainConfig

__all__ = ["register"]

_DEVICE_HELP = "torch device: auto (CUDA when available) | cpu | cuda | cuda:N (default: auto)"


def register(subparsers) -> None:
    """Add the train, evaluate and sample subcommands to the `qvae-core` parser."""
    train = subparsers.add_parser(
        "train",
        help="train a DVAE/QVAE (flags or --config JSON; --quick for a short run; --resume)",
        description="Train a DVAE/QVAE. Values come from --quick, then --config, then the flags.",
    )
    train.add_argument("--config", help="JSON file of config fields")
    train.add_argument("--quick", action="store_true",
                       help="short preset run on the packaged subset (without --output, replaces its earlier run)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --output from its checkpoint (only --epochs, --eval-every, "
                            "--checkpoint-every, --final-importance-samples and --data may change)")
    train.add_argument("--overwrite", action="store_true", help="replace a run that --output already holds")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--no-overlap", dest="overlap", action="store_false", default=argparse.SUPPRESS,
                       help="sample the negative phase after the networks, not beside them (to compare)")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "overlap":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        train.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=f.metadata["parse"] or (str if default is None else type(default)),
            default=argparse.SUPPRESS,  # only flags given override --quick and --config
            help=f"{f.metadata['help']} (default: {default})",
        )
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("evaluate", help="ELBO, IW log-likelihood, QBM bounds, active units -> JSON")
    evaluate.add_argument("checkpoint", help="checkpoint.pt or a run directory")
    evaluate.add_argument("--data", help="dataset (default: the one the run was trained on)")
    evaluate.add_argument("--num-images", type=at_least(0), default=0, help="first N validation images (0: all)")
    evaluate.add_argument("--importance-samples", type=at_least(1), default=1000, help="K per image for the LL")
    evaluate.add_argument("--log-z-population", type=at_least(MIN_POPULATION), default=LOG_Z_POPULATION,
                          help="population of the log Z annealing")
    evaluate.add_argument("--log-diag-population", type=at_least(MIN_POPULATION), default=200,
                          help="QBM: population of log_diag")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--device", default="auto", help=_DEVICE_HELP)
    evaluate.add_argument("--output", help="JSON file (default: evaluation.json beside the checkpoint)")
    evaluate.set_defaults(func=_evaluate)

    sample = subparsers.add_parser("sample", help="write a PNG grid of digits generated from the prior")
    sample.add_argument("checkpoint", help="checkpoint.pt or a run directory")
    sample.add_argument("--num-samples", type=at_least(1), default=100)
    sample.add_argument("--columns", type=at_least(1), default=10)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", default="auto", help=_DEVICE_HELP)
    sample.add_argument("--output", help="PNG file (default: samples.png beside the checkpoint)")
    sample.set_defaults(func=_sample)


def _train(args) -> int:
    from .train import Trainer

    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if args.resume:
        if args.config or args.overwrite:
            raise ValueError("--resume continues the saved run: --config and --overwrite do not apply")
        output = flags.pop("output", QUICK["output"] if args.quick else TrainConfig.output)
        trainer = Trainer.resume(output, **flags)  # which refuses flags that would change the run
    else:
        values = dict(QUICK) if args.quick else {}
        if args.config:
            values.update(read_json(args.config))
        values.update(flags)
        # --quick is a demonstration: run again into its own directory, it replaces its earlier run
        trainer = Trainer(TrainConfig.from_dict(values), overwrite=args.overwrite or (args.quick and "output" not in flags))
    print(f"training {_describe(trainer.config)} on {trainer.data.train.shape[0]} images of {trainer.data.source}")
    trainer.fit(progress=not args.no_progress)
    # the run's own log Z population and seeds (Trainer.validate), not evaluate's defaults
    metrics = trainer.validate(importance_samples=trainer.config.final_importance_samples)
    write_json(metrics, trainer.output / "evaluation.json")
    _print_metrics(metrics)
    paths = _write_grids(trainer.model, trainer.valid_images.numpy(), trainer.data.image_shape, trainer.output,
                         seed=trainer.config.seed)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _evaluate(args) -> int:
    from .data import load_dataset
    from .evaluation import evaluate
    from .train import load_checkpoint

    config, model, state = load_checkpoint(args.checkpoint, args.device)
    data = load_dataset(args.data if args.data is not None else config.data)
    if list(data.image_shape) != list(state["image_shape"]):
        raise ValueError(f"data: {data.source} has images of shape {tuple(data.image_shape)}; the run was "
                         f"trained on {tuple(state['image_shape'])}")
    images = data.binary_valid(seed=config.seed)
    if args.num_images:
        images = images[: args.num_images]
    output = Path(args.output) if args.output else run_directory(args.checkpoint) / "evaluation.json"
    metrics = evaluate(model, images, importance_samples=args.importance_samples, seed=args.seed,
                       log_z_population=args.log_z_population, log_diag_population=args.log_diag_population)
    write_json(metrics, output)
    _print_metrics(metrics)
    print(f"wrote {output}")
    return 0


def _sample(args) -> int:
    from .train import load_checkpoint

    _, model, state = load_checkpoint(args.checkpoint, args.device)
    output = Path(args.output) if args.output else run_directory(args.checkpoint) / "samples.png"
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
        save_grid(pairs.numpy(), image_shape, directory / "reconstructions.png", columns=columns),
    ]


def _print_metrics(m: dict) -> None:
    log_z = f"log Z {m['log_z']:.3f} ± {m['log_z_std']:.3f}"
    lines = []
    if "q_elbo" in m:
        lines.append(f"validation Q-ELBO {m['q_elbo']:.3f} ± {m['q_elbo_stderr']:.3f} (Gamma = {m['gamma']:g})")
    if "elbo" in m:
        lines.append(f"validation ELBO   {m['elbo']:.3f} ± {m['elbo_stderr']:.3f}")
    if "ll" in m:
        lines.append(f"validation LL     {m['ll']:.3f} ± {m['ll_stderr']:.3f} (images) "
                     f"± {m['log_z_std']:.3f} (log Z), K = {m['importance_samples']}")
    lines.append(f"{log_z}; active units {m['active_units']}/{m['num_latent']}; {m['num_images']} images")
    print("\n".join(lines))


def _describe(config) -> str:
    quantum = f" Gamma={config.gamma:g}" if config.gamma > 0 else ""
    return (f"{config.prior} {config.latent}{quantum} prior, {config.smoothing} smoothing, "
            f"{config.encoder} networks, {config.sampler} sampler, {config.epochs} epochs")


