"""The samplers on a Dask cluster: independent annealing runs and chunks of log_diag states as tasks
of a dask.distributed Client (docs/conventions.md, "Many processes"). numpy and Dask only (extra
`dask`); Dask is imported when a function runs.

Task i's seed is derived_seed(seed, TaskStream, i), so a result depends on the seed and on how the
work is split (`runs`, `chunk_size`), never on the number of workers or on which worker ran a task:
it equals the serial loop over the same tasks, and a task whose worker dies is run again by Dask
with the same answer. Each task uses `num_threads` core threads (default 1): give each worker as
many Dask threads as its cores divided by num_threads (a LocalCluster made here has one thread per
worker and one worker per core).

    client=None       a LocalCluster on this machine for the call (closed afterwards);
    client=Client     any cluster, e.g. Client("tcp://scheduler:8786") or a dask-jobqueue SLURMCluster.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from . import annealing
from ._validation import binary_states, positive_int, seed_value
from .kinds import core_kind
from .seeds import TaskStream, derived_seed

__all__ = ["anneal", "log_z", "log_diag", "task_seeds", "LOG_DIAG_CHUNK"]

LOG_DIAG_CHUNK = 16  # states per log_diag task by default


def task_seeds(seed: int, purpose: TaskStream, num_tasks: int) -> list[int]:
    """The seeds of tasks 0..num_tasks-1: derived_seed(seed, purpose, i)."""
    return [derived_seed(seed, purpose, i) for i in range(num_tasks)]


def anneal(model, *, runs: int, seed, client=None, num_threads: int = 1, **options) -> list:
    """`runs` independent annealing.anneal runs of `model` as Dask tasks; run i has seed
    derived_seed(seed, TaskStream.ANNEAL, i). `options` are anneal's (population, schedule, ...).
    Returns the AnnealResults in run order."""
    _check_model(model)
    seeds = task_seeds(seed_value(seed), TaskStream.ANNEAL, positive_int(runs, "runs"))
    threads = positive_int(num_threads, "num_threads")
    with _client(client) as c:
        futures = [c.submit(annealing.anneal, model, seed=s, num_threads=threads, **options) for s in seeds]
        return c.gather(futures)


def log_z(model, *, runs: int, seed, client=None, num_threads: int = 1, **options) -> tuple[float, float]:
    """(log Z, its standard error) of `runs` independent runs (`anneal`) combined by
    annealing.combine_log_z (log-mean-exp of Z, unbiased in Z)."""
    return annealing.combine_log_z(anneal(model, runs=runs, seed=seed, client=client, num_threads=num_threads,
                                          **options))


def log_diag(qbm, states, *, seed, chunk_size: int = LOG_DIAG_CHUNK, client=None, num_threads: int = 1,
             **options) -> tuple[np.ndarray, np.ndarray]:
    """annealing.log_diag over chunks of `chunk_size` rows of `states`, one Dask task each; chunk k
    has seed derived_seed(seed, TaskStream.LOG_DIAG, k). Returns (log_diag, log_diag_std), (batch,) each."""
    kind = core_kind(qbm)
    if kind is None or not kind.quantum:
        raise ValueError(f"qbm: expected a QBM, got {type(qbm).__name__}")
    states = binary_states(states, "states", qbm.num_units)
    chunk_size = positive_int(chunk_size, "chunk_size")
    chunks = [states[i : i + chunk_size] for i in range(0, states.shape[0], chunk_size)]
    seeds = task_seeds(seed_value(seed), TaskStream.LOG_DIAG, len(chunks))
    threads = positive_int(num_threads, "num_threads")
    if not chunks:
        return np.zeros(0), np.zeros(0)
    with _client(client) as c:
        futures = [c.submit(annealing.log_diag, qbm, chunk, seed=s, num_threads=threads, **options)
                   for chunk, s in zip(chunks, seeds)]
        parts = c.gather(futures)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _check_model(model) -> None:
    if core_kind(model) is None:
        raise ValueError(f"model: expected an RBM, BoltzmannMachine or QBM, got {type(model).__name__}")


@contextlib.contextmanager
def _client(client):
    """`client` itself, or a LocalCluster's client (one single-threaded worker per core) for the call."""
    if client is not None:
        if not callable(getattr(client, "submit", None)) or not callable(getattr(client, "gather", None)):
            raise ValueError(f"client: expected a dask.distributed.Client, got {type(client).__name__}")
        yield client
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("qvae_core.distributed needs Dask: pip install 'qvae-core[dask]'") from exc
    with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as local:
        yield local
