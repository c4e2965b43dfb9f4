"""Pieces shared by the torch trainers (qvae_core.dvae, qvae_core.qahm): run directories, atomic
checkpoints, metrics lines and a progress bar. torch is imported only by the functions that save
or load checkpoints.

A run directory holds checkpoint.pt and metrics.jsonl (one JSON line per epoch, written before the
checkpoint, so a resume drops the lines after it). A new run refuses a directory that holds a run
unless it may overwrite it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

__all__ = ["CHECKPOINT", "METRICS", "Progress", "start_run", "append_metrics", "truncate_metrics", "save_atomically",
           "read_checkpoint", "check_resumable"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.2 s when stderr is a terminal."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label = total, label
        self.enabled = enabled and sys.stderr.isatty()
        self.start = self.last = time.perf_counter()

    def update(self, done: int, value: float) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        filled = int(30 * done / self.total)
        rate = done / max(now - self.start, 1e-9)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                         f"objective {value:9.2f}  {rate:5.1f} steps/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def start_run(output: Path, overwrite: bool, resume_hint: str) -> None:
    """Prepare `output` for a new run: ValueError if it holds one (its checkpoint) and overwrite is
    False, naming how to resume it (`resume_hint`) or replace it; else an empty metrics file."""
    if (output / CHECKPOINT).exists() and not overwrite:
        raise ValueError(f"output: {output} holds a run ({CHECKPOINT}); resume it ({resume_hint}) or replace it "
                         "(overwrite=True, --overwrite)")
    output.mkdir(parents=True, exist_ok=True)
    (output / CHECKPOINT).unlink(missing_ok=True)
    (output / METRICS).write_text("")


def append_metrics(output: Path, metrics: dict) -> None:
    with open(output / METRICS, "a") as f:
        f.write(json.dumps(metrics) + "\n")


def truncate_metrics(output: Path, epoch: int) -> None:
    """Drop the metrics lines of epochs after `epoch` (written after the last checkpoint)."""
    metrics = output / METRICS
    if metrics.exists():
        lines = [line for line in metrics.read_text().splitlines() if json.loads(line)["epoch"] <= epoch]
        metrics.write_text("".join(line + "\n" for line in lines))


def save_atomically(state: dict, path: Path) -> Path:
    """torch.save to a temporary file, then rename: a reader never sees half a checkpoint."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Path, *, kind: str, version: int, keys, has=lambda state: True) -> dict:
    """The checkpoint dict at `path` (torch.load, weights only, onto the CPU): FileNotFoundError if missing,
    ValueError if unreadable, not of `kind` at `version` (or failing `has`) or lacking `keys`."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")  # saved on any device
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"checkpoint: {path} could not be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("version") != version or not has(state):
        raise ValueError(f"checkpoint: {path} is not a qvae-core {kind} checkpoint (version {version})")
    missing = sorted(set(keys) - set(state))
    if missing:
        raise ValueError(f"checkpoint: {path} lacks {', '.join(missing)}")
    return state


def check_resumable(overrides, resumable, output) -> None:
    """ValueError naming the config fields of `overrides` a resumed run may not change."""
    fixed = sorted(set(overrides) - resumable)
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: fixed by the saved run in {output}; only "
                         f"{', '.join(sorted(resumable))} may change when it resumes")
