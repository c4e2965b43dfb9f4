"""Helpers shared by the commands of the DVAE and the QAHM (qvae_core.dvae.cli, qvae_core.qahm.cli)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._training import RunLock, atomic_file


def at_least(minimum: int):
    """argparse type: an integer >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def read_json(path) -> dict:
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"config: {path} could not be read as JSON ({exc})") from None
    if not isinstance(values, dict):
        raise ValueError(f"config: {path} must hold a JSON object of config fields")
    return values


def write_json(metrics: dict, output: Path) -> None:
    """`metrics` as indented JSON at `output` (its directory made), written atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(output, "w") as file:
        file.write(json.dumps(metrics, indent=2) + "\n")


def run_directory(checkpoint) -> Path:
    path = Path(checkpoint)
    return path if path.is_dir() else path.parent


def lock_if_in_run(checkpoint, directory) -> RunLock | None:
    """A RunLock on the run directory of `checkpoint` when the command writes into it (`directory` is
    it): ValueError while a trainer runs there. None when the command writes elsewhere."""
    run = run_directory(checkpoint)
    return RunLock(run) if run.is_dir() and Path(directory).resolve() == run.resolve() else None
