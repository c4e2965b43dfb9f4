"""The tables of experiments: the papers' (presets.py: paper 000 Tables I-II, paper 001 Table I) and
the comparison of docs/results.md (Bernoulli, RBM and QBM priors at one small budget)::

    qvae-core experiments --table paper000-I | paper000-II | paper001-I | results \
        [--epochs N] [--seeds S] [--data PATH] [--output runs/experiments] [--set FIELD=VALUE ...]

run_table trains every row once per seed in OUTPUT/TABLE/ROW/seed-S (resuming a checkpoint there,
refusing one of another run), evaluates it once on the split the paper reports (results.json there)
and writes OUTPUT/TABLE.md: the paper's numbers beside ours, mean ± standard error over seeds.
Each run's learning curve is its metrics.jsonl.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..torch_env import shorten_torch_spin

shorten_torch_spin()  # before torch loads, as `qvae-core train` does

from .config import TrainConfig  # noqa: E402
from .data import load_dataset  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .._training import CHECKPOINT  # noqa: E402
from .presets import ROWS, TABLES, row_values  # noqa: E402
from .train import Trainer  # noqa: E402
from ..seeds import RunStream, derived_seed  # noqa: E402


def train_or_resume(config: TrainConfig, log=print) -> Trainer:
    """The run of `config` trained in config.output to config.epochs: from its checkpoint if there is
    one (refusing one of another run, _check_same_run), else from the start."""
    output = Path(config.output)
    if (output / CHECKPOINT).exists():
        trainer = Trainer.resume(output, epochs=config.epochs)
        _check_same_run(output, trainer.config, config)
    else:
        trainer = Trainer(config)
    trainer.fit(progress=False, log=log)
    return trainer


def _check_same_run(output: Path, saved: TrainConfig, wanted: TrainConfig) -> None:
    """ValueError naming `output` and the settings where its saved run differs from the one asked for
    (all but epochs, which a resumed run may extend): a resume must not pass one run off as another."""
    saved_dict, wanted_dict = saved.to_dict(), wanted.to_dict()
    differ = sorted(key for key in wanted_dict if key != "epochs" and saved_dict.get(key) != wanted_dict[key])
    if differ:
        settings = ", ".join(f"{key} {saved_dict.get(key)!r} (asked {wanted_dict[key]!r})" for key in differ)
        raise ValueError(f"output: {output} holds another run ({settings}); use another --output")


# --- the papers' tables ---
_LABELS = {"elbo": "ELBO", "q_elbo": "Q-ELBO", "ll": "LL"}


@dataclass(frozen=True)
class Budget:
    """What a table's runs may change from the presets, and how they are evaluated. epochs / seeds
    None: the presets' / the paper's; overrides: TrainConfig fields set in every row (e.g. a smaller
    train_size); importance_samples None: the preset's final_importance_samples (the paper's K);
    eval_images 0: every image of the split."""

    epochs: int | None = None
    seeds: int | None = None
    data: str | None = None
    overrides: dict = field(default_factory=dict)
    importance_samples: int | None = None
    eval_images: int = 0
    log_z_population: int = 10_000
    log_diag_population: int = 200


def split_images(trainer: Trainer, split: str) -> tuple[str, np.ndarray]:
    """(split, its 0/1 images) for the split a paper reports: the run's validation images, or the
    data's test split (Dataset.binary_split; ValueError naming the split if the data lacks it)."""
    if split == "valid":
        return split, trainer.valid_images.cpu().numpy()
    return split, trainer.data.binary_split(split, seed=trainer.config.seed)


def evaluate_row(trainer: Trainer, split: str, metrics: tuple, budget: Budget) -> dict:
    """The metrics a table reports for one trained run, on `split` (split_images): the LL by
    importance weighting with the run's K (its ELBO from the same draws), else the ELBO and, for a QBM,
    the Q-ELBO from one draw per image (the true ELBO through log_diag; at Gamma = 0 the two are equal)."""
    model, config = trainer.model, trainer.config
    evaluated, images = split_images(trainer, split)
    if budget.eval_images:
        images = images[: budget.eval_images]
    seed = derived_seed(config.seed, RunStream.LOG_Z, trainer.epoch)
    log_z = model.prior.log_partition(population=budget.log_z_population, seed=seed)
    k = budget.importance_samples or config.final_importance_samples
    values = evaluate(model, images, importance_samples=k if "ll" in metrics else 1, log_z=log_z,
                      log_diag_population=budget.log_diag_population,
                      seed=derived_seed(config.seed, RunStream.EVALUATION, trainer.epoch))
    if "q_elbo" in metrics and "q_elbo" not in values:  # a classical prior: the Q-ELBO is the ELBO
        values["q_elbo"], values["q_elbo_stderr"] = values["elbo"], values["elbo_stderr"]
    return {**values, "split": evaluated}


def row_config(table: str, name: str, seed: int, budget: Budget, output: Path) -> TrainConfig:
    """The config of preset `name` with `seed` under `budget`, trained in OUTPUT/TABLE/NAME/seed-SEED."""
    directory = Path(output) / table / name / f"seed-{seed}"
    values = {**row_values(name), **budget.overrides, "data": budget.data, "seed": seed, "output": str(directory)}
    if budget.epochs is not None:
        values["epochs"] = budget.epochs
    return TrainConfig(**values)


def run_row(table: str, name: str, seed: int, budget: Budget, output: Path, log=print) -> dict:
    """Train (or finish) preset `name` with `seed` in OUTPUT/TABLE/NAME/seed-SEED, then evaluate it
    once as the table reports (evaluate_row); results.json there keeps the result, and is reused while
    the run and the evaluation asked for are the ones it holds."""
    spec = TABLES[table]
    config = row_config(table, name, seed, budget, output)
    directory = Path(config.output)
    evaluation = {"split": spec.split, "metrics": list(spec.metrics), "eval_images": budget.eval_images,
                  "importance_samples": budget.importance_samples or config.final_importance_samples,
                  "log_z_population": budget.log_z_population, "log_diag_population": budget.log_diag_population}
    results_path = directory / "results.json"
    if results_path.exists():
        results = json.loads(results_path.read_text())
        _check_same_run(directory, TrainConfig.from_dict(results["config"]), config)
        if results["epoch"] == config.epochs and results["evaluation"] == evaluation:
            return results
    trainer = train_or_resume(config, log=lambda line: log(f"{name} seed {seed}: {line}"))
    results = {"name": name, "seed": seed, "epoch": trainer.epoch, "data": trainer.data.source,
               "evaluation": evaluation,
               "metrics": evaluate_row(trainer, spec.split, spec.metrics, budget), "config": trainer.config.to_dict()}
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def run_table(table: str, budget: Budget = Budget(), output="runs/experiments", rows=None, log=print) -> str:
    """Run every row of paper table `table` (TABLES) for each seed 0 .. seeds-1, resuming what OUTPUT
    already holds, and write OUTPUT/TABLE.md: the paper's numbers beside ours (mean ± standard error
    over seeds). Returns the Markdown."""
    if table not in TABLES:
        raise ValueError(f"table: expected one of {sorted(TABLES)}, got {table!r}")
    spec = TABLES[table]
    rows = list(spec.rows if rows is None else rows)
    unknown = [r for r in rows if r not in spec.rows]
    if unknown or not rows:
        raise ValueError(f"rows: {unknown or rows} not rows of {table} (its rows: {', '.join(spec.rows)})")
    seeds = spec.seeds if budget.seeds is None else budget.seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds: expected an integer >= 1, got {seeds!r}")
    for key in budget.overrides:
        if key in ("seed", "output", "data", "epochs"):
            raise ValueError(f"overrides: {key} is set by the table's own arguments (seeds, output, data, epochs)")
    output = Path(output)
    for name in rows:  # every config checked before anything is written
        for seed in range(seeds):
            row_config(table, name, seed, budget, output)
    load_dataset(budget.data).require_split(spec.split)  # and the split the table reports, before any training
    results = {name: [run_row(table, name, seed, budget, output, log) for seed in range(seeds)] for name in rows}
    text = paper_table(table, results, budget)
    (output / f"{table}.md").write_text(text + "\n")
    return text


def _over_seeds(values: list) -> str:
    """mean ± standard error over seeds (the sample standard deviation / sqrt(seeds))."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return f"{values[0]:.2f} (1 seed)"
    return f"{values.mean():.2f} ± {values.std(ddof=1) / math.sqrt(values.size):.2f}"


def paper_table(table: str, results: dict, budget: Budget) -> str:
    """Markdown: a row per preset, the paper's number and ours for each metric the table reports."""
    spec = TABLES[table]
    first = next(iter(results.values()))[0]
    evaluated = first["metrics"]["split"]
    split_note = f"the {evaluated} split"
    k = first["evaluation"]["importance_samples"]
    lines = [f"## {table}", "", spec.caption + ".", "",
             f"Ours: evaluated on {split_note}, "
             + (f"{first['metrics']['num_images']} images" + (f", LL with K = {k}" if "ll" in spec.metrics else ""))
             + f"; data {first['data']}"
             + (f"; overrides {json.dumps(budget.overrides)}" if budget.overrides else "") + ".", ""]
    header = ["row", "source", "epochs (paper)", "seeds"]
    for metric in spec.metrics:
        header += [f"{_LABELS[metric]} (paper)", f"{_LABELS[metric]} (ours)"]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, runs in results.items():
        preset = ROWS[name]
        cells = [name, preset.source, f"{runs[0]['epoch']} ({preset.values['epochs']})", str(len(runs))]
        for metric in spec.metrics:
            ours = [r["metrics"][metric] for r in runs if metric in r["metrics"]]  # a QBM's LL is not estimated
            cells += [preset.reported.get(metric, "—"), _over_seeds(ours) if ours else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

