"""Data-parallel training and evaluation under torchrun (torch.distributed): everything that depends on the rank.

`torchrun --nproc_per_node=N -m qvae_core train ...` starts N processes; `Ranks.from_environment()`
joins them in one process group (gloo for CPU tensors, NCCL for CUDA ones) and the trainer and the
evaluation ask it, not the environment, what their process does:

- data: every rank draws the epoch's same permutation and takes every N-th batch of it (rank r
  takes batches r, r + N, ...), so an epoch has len // (N * batch) steps of N * batch images;
- gradients: the networks' objective runs through DistributedDataParallel, whose all-reduce averages
  the ranks' gradients during the backward pass of the positive phase (Trainer._positive_phase). The
  prior's parameters stay out of DDP: they get a second backward pass (the log Z term, after the
  negative phase joins), which DDP's reducer does not allow, so `average_gradients` averages them
  once both passes are done. The negative phase is thereby N times larger (every rank has its own chains);
- seeds: rank r's sampler has seed derived_seed(run seed, SAMPLER, rank=r), its torch generator
  (posterior draws, dynamic binarisation) torch_seed(run seed, TRAINING_NOISE, rank=r); rank 0
  keeps the single-process seeds, so one process under torchrun is bit-identical to a plain run;
- chains stay in the samplers, outside the model: DDP's broadcast of rank 0's buffers (batch-norm
  statistics) before each forward never touches them;
- rank 0 alone logs and writes (metrics, curves, checkpoints); a checkpoint holds every rank's
  sampler and generator (gathered), and resumes with the same number of processes (or, asked,
  with another: `local_checkpoint`);
- evaluation: each rank draws the posterior samples of its block of images (`share`; the draws
  are keyed by the image, evaluation.py), rank 0 gathers the per-image terms and shares the metrics.

A rank that fails makes torchrun stop the others; a collective that waits longer than
QVAE_DIST_TIMEOUT seconds (default 1800) for a lost peer raises instead of hanging.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import importlib
import os
import warnings

import numpy as np
import torch

from ..seeds import RunStream, derived_seed, torch_seed

__all__ = ["Ranks", "SINGLE"]

_TIMEOUT_S = 1800.0
_RANK_KEYS = ("sampler", "generator")  # what each rank of a checkpoint has of its own


class Ranks:
    """The processes of one run: `rank` of `world_size` (0 of 1 without torchrun)."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, local_world_size: int = 1,
                 group: bool = False):
        self.rank, self.world_size = rank, world_size
        self.local_rank, self.local_world_size = local_rank, local_world_size
        self._group = group  # a torch.distributed process group is initialised

    def __repr__(self) -> str:
        return f"Ranks(rank={self.rank}, world_size={self.world_size})"

    @classmethod
    def from_environment(cls) -> "Ranks":
        """The process group of a torchrun launch (RANK, WORLD_SIZE set), joined once; else SINGLE."""
        import torch.distributed as dist

        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return SINGLE
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if not dist.is_initialized():
            timeout = float(os.environ.get("QVAE_DIST_TIMEOUT", _TIMEOUT_S))
            backend = "gloo"
            if torch.cuda.is_available():  # a rank's GPU is its local rank's
                torch.cuda.set_device(local_rank % torch.cuda.device_count())
                backend = "cpu:gloo,cuda:nccl"
            # torch._dynamo (which DistributedDataParallel imports) keeps a process group that exists
            # when it is first imported alive to the end of the process (torch 2.13), and with it gloo's
            # worker threads: imported first, the group ends when `leave` destroys it.
            importlib.import_module("torch._dynamo")
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
            atexit.register(_destroy_group)  # (a script that did not leave)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
        if local > 1:  # share the node's cores between its ranks
            torch.set_num_threads(max(1, _cores() // local))
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, local, group=True)

    def leave(self) -> None:
        """End this process's part of the run's process group, once its last collective is done: its
        gloo worker threads are joined now, while the interpreter is whole. Left to the end of the
        process, a worker that still holds a finished collective's tensors frees them during
        interpreter finalisation and aborts the process ("terminate called without an active
        exception", pytorch/pytorch#190489). Drop what holds the group first (Trainer.close: its
        DistributedDataParallel wrapper). Nothing to do in a single process; safe to call twice."""
        if self._group:
            gc.collect()  # (DistributedDataParallel's reference cycles hold the group)
            _destroy_group()

    @property
    def main(self) -> bool:
        """Whether this process logs and writes (rank 0)."""
        return self.rank == 0

    def device(self, name: str) -> str:
        """The torch device name for option `name` on this rank: under torchrun, auto and cuda mean
        the GPU of this rank's local rank (one GPU per process)."""
        if self._group and name in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return name

    # --- seeds ---
    def sampler_seed(self, seed: int) -> int:
        return derived_seed(seed, RunStream.SAMPLER, rank=self.rank)

    def generator_seed(self, seed: int) -> int:
        """The trainer's torch generator: the run seed itself on rank 0 (the single-process run)."""
        return seed if self.rank == 0 else torch_seed(seed, RunStream.TRAINING_NOISE, rank=self.rank)

    def configure_sampler(self, sampler) -> None:
        """Under torchrun, give a sampler that takes `num_threads` its rank's share of the cores this
        process may use (its results do not depend on it)."""
        if self._group and hasattr(sampler, "num_threads"):
            sampler.num_threads = max(1, _cores() // self.local_world_size)

    # --- data and gradients ---
    def num_steps(self, num_images: int, batch_size: int) -> int:
        return num_images // (batch_size * self.world_size)

    def batch(self, order: torch.Tensor, step: int, batch_size: int) -> torch.Tensor:
        """This rank's positions in `order` at `step`: batch step * N + rank of the epoch."""
        start = (step * self.world_size + self.rank) * batch_size
        return order[start : start + batch_size]

    def data_parallel(self, model: torch.nn.Module, method: str, *, apart: torch.nn.Module | None = None):
        """A callable for model.`method` whose backward all-reduces (averages) the gradients over the
        ranks (DistributedDataParallel), or the method itself in a single process. The parameters and
        buffers of the submodule `apart` are left out: `average_gradients` averages theirs."""
        if not self._group:
            return getattr(model, method)
        from torch.nn.parallel import DistributedDataParallel

        wrapper = _Method(model, method)
        if apart is not None:
            ignored = {id(t) for t in [*apart.parameters(), *apart.buffers()]}
            names = [n for n, t in [*wrapper.named_parameters(), *wrapper.named_buffers()] if id(t) in ignored]
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(wrapper, names)
        device = next(model.parameters()).device
        return DistributedDataParallel(wrapper, device_ids=[device] if device.type == "cuda" else None)

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Average the gradients of `module`'s parameters over the ranks (those data_parallel left apart)."""
        if self.world_size == 1:
            return
        import torch.distributed as dist

        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world_size

    def copy_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers of `module` (batch-norm statistics) on every rank. DDP broadcasts them
        before each forward of training; this makes the model whole between steps (validation)."""
        if self.world_size == 1:
            return
        import torch.distributed as dist

        for b in module.buffers():
            dist.broadcast(b, src=0)

    def average(self, value: float) -> float:
        """The mean of `value` over the ranks (a collective)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        total = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(total)
        return float(total[0]) / self.world_size

    # --- evaluation ---
    def share(self, num_items: int) -> tuple[int, int]:
        """This rank's block [lo, hi) of `num_items` (contiguous blocks, in rank order, sizes within one)."""
        bounds = np.linspace(0, num_items, self.world_size + 1).round().astype(int)
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    def from_main(self, compute):
        """compute() on rank 0, its result (any picklable object) on every rank; compute() in one process."""
        if self.world_size == 1:
            return compute()
        import torch.distributed as dist

        box = [compute() if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_rows(self, arrays: dict) -> dict:
        """On rank 0, every rank's `arrays` (numpy, rows of its share) joined in rank order; on the
        others their own. A collective."""
        if self.world_size == 1:
            return arrays
        import torch.distributed as dist

        parts = [None] * self.world_size if self.main else None
        dist.gather_object(arrays, parts, dst=0)
        if not self.main:
            return arrays
        return {key: np.concatenate([part[key] for part in parts]) for key in arrays}

    def partial_name(self, path):
        """This rank's file of partial results `path` (a Path; each rank saves its own): NAME.rankR-of-N.SUFFIX."""
        return path if self.world_size == 1 else path.with_suffix(f".rank{self.rank}-of-{self.world_size}{path.suffix}")

    # --- checkpoints ---
    def gather_checkpoint(self, state: dict) -> dict | None:
        """On rank 0, `state` with every rank's sampler and generator (`ranks`, `world_size`); None on
        the others. A collective: every rank calls it."""
        if self.world_size == 1:
            return state
        import torch.distributed as dist

        mine = {key: state[key] for key in _RANK_KEYS}
        parts = [None] * self.world_size if self.main else None
        dist.gather_object(mine, parts, dst=0)
        if not self.main:
            return None
        return {**state, "world_size": self.world_size, "ranks": parts}  # rank 0's at the top as well

    def local_checkpoint(self, state: dict, path, *, reseed: bool = False) -> dict:
        """This rank's part of a checkpoint (`state` as gather_checkpoint wrote it). Written by another
        number of processes: ValueError saying how many it needs, or with `reseed` a warning, and the
        ranks the checkpoint lacks start new chains and generators from their own seeds (their
        "sampler" and "generator" are None) while the others continue theirs."""
        written = int(state.get("world_size", 1))
        if written != self.world_size:
            if not reseed:
                launch = "without torchrun (or torchrun --nproc_per_node=1)" if written == 1 else \
                    f"with torchrun and {written} processes (e.g. --nproc_per_node={written})"
                raise ValueError(f"checkpoint: {path} was written by {written} process(es); this run has "
                                 f"{self.world_size}: resume it {launch}, or start new chains on the ranks "
                                 "it lacks (--reseed-chains)")
            if self.main:
                change = (f"new chains on {_ranks(written, self.world_size)}" if self.world_size > written
                          else f"the chains of {_ranks(self.world_size, written)} are dropped")
                warnings.warn(f"checkpoint: {path} was written by {written} process(es), this run has "
                              f"{self.world_size}: {change}", RuntimeWarning, stacklevel=2)
        if written == 1:
            return state if self.rank == 0 else {**state, "sampler": None, "generator": None}
        return {**state, **(state["ranks"][self.rank] if self.rank < written else dict.fromkeys(_RANK_KEYS))}


def _destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _ranks(first: int, end: int) -> str:
    return f"rank {first}" if end == first + 1 else f"ranks {first} to {end - 1}"


def _cores() -> int:
    """The cores this process may run on (its affinity: what SLURM or taskset gave it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Method(torch.nn.Module):
    """model.`method` as a module's forward, for DistributedDataParallel (which hooks forward)."""

    def __init__(self, model, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *args, **kwargs):
        return getattr(self.model, self.method)(*args, **kwargs)


SINGLE = Ranks()
