"""Pieces shared by the torch trainers (qvae_core.dvae, qvae_core.qahm): run directories, atomic
checkpoints, metrics lines and a progress bar (tqdm). torch is imported only by the functions that save
or load checkpoints.

A run directory holds checkpoint.pt and metrics.jsonl (one JSON line per epoch, written before the
checkpoint, so a resume drops the lines after it). A new run refuses a directory that holds a run
unless it may overwrite it. A process that writes into a run directory holds RunLock on it (an OS
lock on its run.lock file, which the OS drops when the process ends however it ends): a second
process is refused, told the holder's pid.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path

from ._progress import progress_bar

__all__ = ["CHECKPOINT", "METRICS", "LOCK", "RunLock", "Progress", "start_run", "append_metrics", "truncate_metrics",
           "atomic_file", "save_atomically", "read_checkpoint", "check_resumable", "check_epochs"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
LOCK = "run.lock"


class RunLock:
    """An exclusive lock on the run directory `output` (created if missing), held while this object
    lives or until release(): fcntl.flock on output/run.lock, which holds the holder's pid. Taken
    again by the process that holds it, it is shared (one OS lock per directory and process); taken
    by another process, ValueError naming the directory and the holder's pid. The OS releases the
    lock when its process exits or is killed, so a stale run.lock file never blocks."""

    _held: dict[str, list] = {}  # real path of a directory -> [open lock file, RunLocks holding it]
    _guard = threading.Lock()

    def __init__(self, output: Path):
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(output)
        with self._guard:
            entry = self._held.get(key)
            if entry is None:
                entry = self._held[key] = [_lock_file(output / LOCK), 0]
            entry[1] += 1
        self.release = weakref.finalize(self, RunLock._release, key)

    @classmethod
    def _release(cls, key: str) -> None:
        with cls._guard:
            entry = cls._held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del cls._held[key]
                entry[0].close()  # (closing the file drops the lock)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_file(path: Path):
    """`path` opened and locked (LOCK_EX, not waiting), our pid written in it; ValueError if held."""
    file = open(path, "a+")
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip() or "unknown"
        file.close()
        raise ValueError(f"output: {path.parent} is in use by another run (pid {holder}, which holds "
                         f"{path}); wait for it to end or choose another output") from None
    file.truncate(0)
    file.write(f"{os.getpid()}\n")
    file.flush()
    return file


class Progress:
    """The steps of an epoch as a tqdm bar (qvae_core._progress: tqdm's widget in a notebook, a bar on a
    terminal, a line every 30 s in a log); nothing if not enabled."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.bar = progress_bar(total, label, unit="step") if enabled else None

    def update(self, done: int, **values: float) -> None:
        """Steps `done` so far and the running means to show beside them (e.g. objective=-56.4)."""
        if self.bar is not None:
            self.bar.set_postfix({name: f"{value:.2f}" for name, value in values.items()}, refresh=False)
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    """Drop the metrics lines of epochs after `epoch` (written after the last checkpoint), and a last
    line cut short by a crash; replaced atomically, so a crash here loses none of the others."""
    metrics = output / METRICS
    if metrics.exists():
        kept = []
        for line in metrics.read_text().splitlines():
            try:
                if json.loads(line)["epoch"] <= epoch:
                    kept.append(line + "\n")
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # a line the killed run never finished: nothing after it was written
        with atomic_file(metrics, "w") as file:
            file.write("".join(kept))


def check_epochs(epochs: int, saved_epoch: int, output) -> None:
    """ValueError if a run saved at `saved_epoch` would resume to fewer `epochs` (it would train
    nothing and its config would disagree with its checkpoint)."""
    if epochs < saved_epoch:
        raise ValueError(f"epochs: the run in {output} is saved at epoch {saved_epoch}; it resumes to at "
                         f"least that many epochs, got {epochs}")


@contextmanager
def atomic_file(path: Path, mode: str = "wb"):
    """A file to write `path` through: a temporary file beside it, renamed over it when the block
    ends, removed if the block raises. A reader (or a crash) never leaves half a file at `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as file:
            yield file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_atomically(state: dict, path: Path) -> Path:
    """torch.save through atomic_file: a reader never sees half a checkpoint."""
    import torch

    with atomic_file(path) as file:
        torch.save(state, file)
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
