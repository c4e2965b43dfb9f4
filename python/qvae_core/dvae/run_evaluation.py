"""Evaluation of a saved run on one split, written to a file named by its settings (never replaced
unasked) and resumable: `qvae-core evaluate` in Python. The metrics come from evaluation.evaluate."""

from __future__ import annotations

from pathlib import Path

from .._commands import write_json
from .._validation import positive_int
from ..annealing import LOG_Z_POPULATION
from .data import SPLITS, load_dataset
from .distributed import Ranks
from .evaluation import evaluate
from .train import load_checkpoint

__all__ = ["evaluate_run", "evaluation_filename"]


def evaluation_filename(split: str, importance_samples: int, seed: int, num_images: int = 0) -> str:
    """evaluation-SPLIT-KK-seedS[-nN].json: the file an evaluation with these settings writes."""
    subset = f"-n{num_images}" if num_images else ""
    return f"evaluation-{split}-K{importance_samples}-seed{seed}{subset}.json"


def evaluate_run(
    run,
    split: str = "valid",
    *,
    data=None,
    importance_samples: int = 1000,
    num_images: int = 0,
    seed: int = 0,
    log_z_population: int = LOG_Z_POPULATION,
    log_diag_population: int = 200,
    device: str = "auto",
    output=None,
    overwrite: bool = False,
    progress: bool = False,
    ranks: Ranks | None = None,
) -> tuple[dict, Path]:
    """Evaluate the saved run `run` (checkpoint.pt or its directory) on `split` ("valid" or "test")
    of `data` (default: the data it was trained on; dynamic data binarised once from the run's seed),
    on torch `device` (auto: CUDA when available),
    its first `num_images` images (0: all). Writes the metrics (with the settings) to `output`, by
    default evaluation_filename(...) in the run directory, and returns (metrics, path). ValueError,
    with nothing written, if the data lacks the split or the file exists and overwrite is False.
    Resumable: an interrupted call leaves PATH.partial.npz, which the same call continues from.
    Under torchrun (`ranks`, by default Ranks.from_environment()) every rank calls it: the images are
    spread over the ranks (each leaves its own PATH.partial.rankR-of-N.npz), rank 0 writes the file,
    and the metrics equal one process's."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    num_images = positive_int(num_images, "num_images", minimum=0)
    ranks = Ranks.from_environment() if ranks is None else ranks
    config, model, state = load_checkpoint(run, ranks.device(device))
    dataset = load_dataset(data if data is not None else config.data)
    if list(dataset.image_shape) != list(state["image_shape"]):
        raise ValueError(f"data: {dataset.source} has images of shape {tuple(dataset.image_shape)}; the run was "
                         f"trained on {tuple(state['image_shape'])}")
    images = dataset.binary_split(split, seed=config.seed)
    if num_images:
        images = images[:num_images]
    directory = Path(run) if Path(run).is_dir() else Path(run).parent
    path = Path(output) if output is not None else directory / evaluation_filename(
        split, importance_samples, seed, num_images)
    if path.exists() and not overwrite:
        raise ValueError(f"output: {path} exists; choose another --output or replace it (--overwrite, overwrite=True)")
    partial = ranks.partial_name(path.with_name(path.name + ".partial.npz"))
    if overwrite:
        partial.unlink(missing_ok=True)
    metrics = evaluate(model, images, importance_samples=importance_samples, seed=seed, partial=partial,
                       log_z_population=log_z_population, log_diag_population=log_diag_population,
                       progress=progress, ranks=ranks)
    metrics.update(split=split, data=dataset.source, checkpoint=str(run), seed=seed)
    if ranks.main:
        write_json(metrics, path)
    partial.unlink()
    return metrics, path
