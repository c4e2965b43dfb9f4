"""Training: model and sampler builders, schedules and a resumable trainer (the config is config.py).

One step (paper 000 Sec. IV C, paper 001 App. A): draw K·D posterior samples per image, compute
L_{K,D} without log Z (DVAE.objective), draw model samples from the negative-phase sampler, add
kl_weight * log Z through Prior.log_partition_surrogate, and take an Adam step. The model samples
are drawn behind the networks' forward and backward (negative_phase.py), on the CPU, while the
networks run on the run's device (device.py). Schedules are
functions of training progress, so a run is fully described by its config, its weights and a few
counters: β of the smoothing rises linearly from beta_start to beta_end, the KL weight rises
linearly from 0 to 1 over kl_warmup_epochs, the learning rate decays by lr_decay per epoch down to
min_lr, and (K, D) steps through kd_schedule every kd_epochs epochs.

A checkpoint (output/checkpoint.pt) holds the config, weights, optimizer, sampler chains, random
state and counters; output/metrics.jsonl has one JSON line per epoch. `Trainer.resume` continues
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .._curves import Curves, Scalars
from .._training import (CHECKPOINT, METRICS, Progress, RunLock, append_metrics, check_epochs, check_resumable,
                         read_checkpoint, save_atomically, start_run, truncate_metrics)
from ..seeds import RunStream, derived_seed, torch_seed
from .config import TrainConfig
from .data import Dataset, load_dataset
from .device import Placement
from .distributed import SINGLE, Ranks
from .evaluation import evaluate
from .model import DVAE
from .negative_phase import NegativePhase
from .networks import DECODERS, ENCODERS
from .posterior import HierarchicalPosterior
from .priors import PRIORS
from .relaxation import make_relaxation
from .samplers import SAMPLERS
from .smoothing import make_smoothing

__all__ = ["build_model", "build_sampler", "Trainer", "load_checkpoint"]

_CHECKPOINT_VERSION = 2  # 2: persistent chains saved whole (states, streams, worldlines)
_CHECKPOINT_KEYS = ("config", "image_shape", "beta", "epoch", "step", "model", "optimizer", "sampler", "generator")
_DEVICE_KEY = "device"  # the device type of the generator state; absent before devices: "cpu"


def build_model(config: TrainConfig, image_shape, pixel_mean=None) -> DVAE:
    """The DVAE of `config` for images of `image_shape`, initialised from config.seed (torch's global
    RNG is left as it was). pixel_mean (pixels,) sets the MLP decoder's output bias to the data's log-odds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _build_model(config, image_shape, pixel_mean)


def _build_model(config, image_shape, pixel_mean) -> DVAE:
    num_pixels = int(np.prod(image_shape))
    kind = PRIORS[config.prior]
    prior = kind.build(kind.sizes(config.latent), config.gamma)
    smoothing = make_smoothing(config.smoothing, config.beta_start, config.smoothing_uniform, config.smoothing_shift)
    encoder = ENCODERS[config.encoder](num_pixels, image_shape)
    posterior = HierarchicalPosterior(encoder, prior.num_units, config.groups, config.encoder_hidden, smoothing)
    decoder = DECODERS[config.encoder](prior.num_units, config.decoder_hidden, num_pixels, image_shape)
    if pixel_mean is not None and decoder.output_bias is not None:
        with torch.no_grad():
            decoder.output_bias.copy_(torch.logit(torch.as_tensor(pixel_mean).float().clamp(1e-3, 1 - 1e-3)))
    relaxation = make_relaxation(config.relaxation, prior, smoothing, tolerance=config.mean_field_tolerance,
                                 max_iterations=config.mean_field_iterations)
    return DVAE(posterior, decoder, prior, relaxation, config.kl_balance)


def build_sampler(config: TrainConfig, ranks: Ranks = SINGLE):
    """The negative-phase sampler of `config` (SAMPLERS), seeded from config.seed (and the rank)."""
    sampler = SAMPLERS[config.sampler](config, ranks.sampler_seed(config.seed))
    ranks.configure_sampler(sampler)
    return sampler


class Trainer:
    """Trains a DVAE from a TrainConfig; `fit` runs to config.epochs with validation and checkpoints.

    `sampler`, if given, replaces config.sampler for the negative phase: any object with the
    contract of samplers.py (sample(model) -> states, state_dict, load_state_dict), e.g. a QPU sampler.
    Under torchrun the processes train one model data-parallel (`ranks`, distributed.py; by default
    Ranks.from_environment()).
    """

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None, *, sampler=None,
                 overwrite: bool = False, ranks: Ranks | None = None):
        self.config = config
        self.ranks = Ranks.from_environment() if ranks is None else ranks
        # first: a device this machine lacks fails before any work
        self.placement = Placement(self.ranks.device(config.device))
        self.overwrite = overwrite  # may fit() start anew in an output directory that holds a run?
        self.data = (dataset or load_dataset(config.data)).subset(config.train_size, config.valid_size)
        if self.ranks.num_steps(self.data.train.shape[0], config.batch_size) == 0:
            raise ValueError(f"batch_size: {config.batch_size} x {self.ranks.world_size} process(es) is more than "
                             f"the {self.data.train.shape[0]} training images")
        self.model = build_model(config, self.data.image_shape, self.data.train.mean(axis=0))
        if not self.model.prior.needs_sampler:
            sampler = None
        elif sampler is None:
            sampler = build_sampler(config, self.ranks)
        if sampler is not None:
            missing = [m for m in ("sample", "state_dict", "load_state_dict") if not callable(getattr(sampler, m, None))]
            if missing:
                raise ValueError(f"sampler: lacks {', '.join(missing)} (the negative-phase contract of samplers.py)")
        self.placement.module(self.model)
        self.sampler = sampler
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.generator = self.placement.generator(self.ranks.generator_seed(config.seed))
        self._objective = self.ranks.data_parallel(self.model, "objective", apart=self.model.prior)
        self.train_images = torch.from_numpy(self.data.train)
        self.valid_images = torch.from_numpy(self.data.binary_valid(seed=config.seed))
        self.output = Path(config.output)
        self.run_lock: RunLock | None = None  # held from fit() or resume() on: one run per directory
        self.epoch = 0
        self.step = 0
        self._log_z = None  # (step, (log Z, its SE)) of the last validation

    @property
    def sampler(self):
        return self._sampler

    @sampler.setter
    def sampler(self, sampler) -> None:
        """The negative-phase sampler; replacing it (e.g. by a QPU sampler) replaces its driver."""
        self._sampler = sampler
        self.negative_phase = None if sampler is None else NegativePhase(sampler, self.placement,
                                                                           overlap=self.config.overlap)

    def close(self) -> None:
        """Release what training holds besides the model: the negative phase's worker thread and the
        data-parallel wrapper (which keeps the process group alive; Ranks.leave). The model, its
        validation and checkpoints stay usable; training does not."""
        if self.negative_phase is not None:
            self.negative_phase.close()
        self._objective = None

    # --- schedules (functions of progress, so nothing to checkpoint) ---
    def beta_at(self, epochs_done: float) -> float:
        c = self.config
        return c.beta_start + (c.beta_end - c.beta_start) * min(epochs_done / c.epochs, 1.0)

    def kl_weight_at(self, epochs_done: float) -> float:
        warmup = self.config.kl_warmup_epochs
        return 1.0 if warmup == 0 else min(epochs_done / warmup, 1.0)

    def lr_at(self, epoch: int) -> float:
        c = self.config
        return max(c.lr * c.lr_decay**epoch, min(c.min_lr, c.lr))

    def kd_at(self, epoch: int) -> tuple[int, int]:
        stages = self.config.kd_schedule
        return tuple(stages[min(epoch // self.config.kd_epochs, len(stages) - 1)])

    # --- training ---
    def train_epoch(self, progress: bool = False) -> dict:
        if self._objective is None:
            raise RuntimeError("Trainer.train_epoch: the trainer is closed (Trainer.close)")
        c, model, prior = self.config, self.model, self.model.prior
        model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.epoch)
        k, d = self.kd_at(self.epoch)
        shuffle = torch.Generator().manual_seed(torch_seed(c.seed, RunStream.SHUFFLE, self.epoch))
        order = torch.randperm(self.train_images.shape[0], generator=shuffle)
        steps = self.ranks.num_steps(self.train_images.shape[0], c.batch_size)
        bar = Progress(steps, f"epoch {self.epoch + 1}/{c.epochs}", progress)
        negative = self.negative_phase
        total, start = 0.0, time.perf_counter()
        waited = 0.0 if negative is None else negative.seconds
        overlapped_before = 0 if negative is None else negative.overlapped_steps
        for i in range(steps):
            done = self.epoch + i / steps
            model.smoothing.beta = self.beta_at(done)
            kl_weight = self.kl_weight_at(done)
            if negative is not None:
                negative.start(prior)  # from the parameters at the start of the step
            try:
                objective = self._positive_phase(self.ranks.batch(order, i, c.batch_size), k, d, kl_weight)
                surrogate = prior.log_partition_surrogate(
                    None if negative is None else negative.samples(prior.num_units, objective.dtype))
            except BaseException:
                if negative is not None:
                    negative.cancel()
                raise
            log_z_term = kl_weight * surrogate
            if not torch.isfinite(log_z_term):
                loss = (log_z_term - objective).item()
                raise FloatingPointError(f"training diverged at step {self.step}: the loss is {loss}")
            log_z_term.backward()  # the prior's negative phase, added to the gradients of -objective
            self.ranks.average_gradients(prior)  # (the networks' were averaged in the positive phase)
            self.optimizer.step()
            total += objective.item()
            self.step += 1
            bar.update(i + 1, objective=total / (i + 1))
        bar.close()
        seconds = time.perf_counter() - start
        sampling = 0.0 if negative is None else negative.seconds - waited
        overlapped = 0 if negative is None else negative.overlapped_steps - overlapped_before
        self.epoch += 1
        return {
            "epoch": self.epoch, "step": self.step, "train_objective": self.ranks.average(total / steps),
            "lr": self.lr_at(self.epoch - 1), "beta": model.smoothing.beta, "kl_weight": kl_weight, "K": k, "D": d,
            "seconds": seconds, "step_seconds": seconds / steps, "sampling_share": sampling / seconds,
            "overlap_share": overlapped / steps,
        }

    def _positive_phase(self, rows, k: int, d: int, kl_weight: float) -> torch.Tensor:
        """Forward and backward of -L_{K,D} (without log Z) on the training images `rows`: all of
        a step's work that runs while the negative phase samples. Returns the objective, detached."""
        x = self.placement.batch(self.train_images[rows])
        if self.data.dynamic:
            x = torch.bernoulli(x, generator=self.generator)
        objective = self._objective(x, kl_weight=kl_weight, num_importance=k, num_draws=d, generator=self.generator)
        if not torch.isfinite(objective):
            raise FloatingPointError(f"training diverged at step {self.step}: the loss is {-objective.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        (-objective).backward()
        return objective.detach()

    def validate(self, importance_samples: int = 1, **options) -> dict:
        """evaluate() on the validation images with log Z from population annealing (one run per
        training step reached: the final evaluation reuses the last epoch's). Under torchrun every
        rank calls it: the images are spread over the ranks, the log Z run is rank 0's."""
        if self._log_z is None or self._log_z[0] != self.step:
            seed = derived_seed(self.config.seed, RunStream.LOG_Z, self.epoch)
            log_z = self.ranks.from_main(
                lambda: self.model.prior.log_partition(population=self.config.log_z_population, seed=seed))
            self._log_z = (self.step, log_z)
        self.ranks.copy_buffers(self.model)  # (rank 0's batch-norm statistics: the model it saves)
        return evaluate(self.model, self.valid_images, importance_samples=importance_samples, log_z=self._log_z[1],
                        seed=derived_seed(self.config.seed, RunStream.EVALUATION, self.epoch), ranks=self.ranks,
                        **options)

    def fit(self, *, progress: bool = True, log=print) -> list[dict]:
        """Train to config.epochs from the current epoch; returns the metrics of the epochs run.
        Under torchrun every rank calls it; rank 0 alone writes and logs."""
        c, main = self.config, self.ranks.main
        if main:
            self.run_lock = self.run_lock or RunLock(self.output)  # (ValueError if another process runs in it)
            if self.epoch == 0:  # a new run: the directory must not hold another one, unless replaced
                start_run(self.output, self.overwrite, "Trainer.resume, qvae-core train --resume")
            (self.output / "config.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n")
        history = []
        scalars = Scalars(self.output, self.epoch) if c.tensorboard and main else None
        curves = Curves(self.output, _CURVES) if main else None
        while self.epoch < c.epochs:
            metrics = self.train_epoch(progress and main)
            if self.epoch % c.eval_every == 0 or self.epoch == c.epochs:
                v = self.validate(true_elbo=False)
                bound = "q_elbo" if "q_elbo" in v else "elbo"  # a QBM prior's classical-energy bound
                metrics.update({f"val_{bound}": v[bound], f"val_{bound}_stderr": v[f"{bound}_stderr"],
                                "log_z": v["log_z"], "log_z_std": v["log_z_std"], "active_units": v["active_units"]})
                if self.kl_weight_at(self.epoch - 1) >= 1:  # no warm-up in this epoch: the objective is a bound
                    metrics[_training_bound(metrics["K"], bound)] = metrics["train_objective"] - v["log_z"]
            if main:
                append_metrics(self.output, metrics)  # before the checkpoint: resume drops lines after it
                curves.update(self.output / METRICS, last=self.epoch == c.epochs)
            if scalars is not None:
                scalars.add(metrics)  # flushed each epoch
            if self.epoch % c.checkpoint_every == 0 or self.epoch == c.epochs:
                self.save_checkpoint()
            history.append(metrics)
            if main:
                log(_format_metrics(metrics))
        if scalars is not None:
            scalars.close()
        return history

    # --- checkpoints ---
    def state_dict(self) -> dict:
        return {
            "version": _CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "image_shape": list(self.data.image_shape),
            "beta": self.model.smoothing.beta,
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
            "generator": self.generator.get_state(),
            _DEVICE_KEY: self.placement.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        self._log_z = None  # first: a load that fails part-way has still changed the model
        self.model.load_state_dict(state["model"])
        self.model.smoothing.beta = state["beta"]
        self.optimizer.load_state_dict(state["optimizer"])
        if self.sampler is not None and state["sampler"] is not None:  # (None: as the generator)
            self.sampler.load_state_dict(state["sampler"])
        self.epoch, self.step = state["epoch"], state["step"]
        if state["generator"] is not None:  # (None: a rank the checkpoint lacks keeps its new generator)
            reseed = torch_seed(self.config.seed, RunStream.DEVICE_GENERATOR, self.step, rank=self.ranks.rank)
            self.placement.load_generator_state(self.generator, state["generator"], state.get(_DEVICE_KEY, "cpu"),
                                                reseed)

    def save_checkpoint(self) -> Path:
        """Write output/checkpoint.pt atomically: everything a resumed run needs to continue exactly
        as this one does (weights, optimizer, random generators, the sampler's chains; every rank's
        under torchrun, where every rank calls this and rank 0 writes)."""
        state = self.ranks.gather_checkpoint(self.state_dict())
        return self.output / CHECKPOINT if state is None else save_atomically(state, self.output / CHECKPOINT)

    @classmethod
    def resume(cls, output, *, dataset: Dataset | None = None, sampler=None, ranks: Ranks | None = None,
               reseed_chains: bool = False, **overrides) -> "Trainer":
        """The trainer saved in output/checkpoint.pt, writing on in `output` (also when the run was
        copied there). `overrides` may change the fields of RESUMABLE (e.g. epochs); the others
        define the saved run. Metrics lines written after the checkpoint are dropped. Under torchrun
        it resumes with as many processes as wrote the checkpoint, or with `reseed_chains` with
        another number (Ranks.local_checkpoint)."""
        check_resumable(overrides, RESUMABLE, output)
        ranks = Ranks.from_environment() if ranks is None else ranks
        # (a missing run: _read_checkpoint says so)
        lock = RunLock(output) if ranks.main and Path(output).is_dir() else None
        path = Path(output) / CHECKPOINT
        state = _read_checkpoint(path)
        config = TrainConfig.from_dict({**state["config"], **overrides, "output": str(output)})
        check_epochs(config.epochs, state["epoch"], output)
        local = ranks.local_checkpoint(state, path, reseed=reseed_chains)
        trainer = cls(config, dataset, sampler=sampler, ranks=ranks)
        trainer.run_lock = lock
        trainer.load_state_dict(local)
        if ranks.main:
            truncate_metrics(Path(config.output), trainer.epoch)
        return trainer


# Config fields a resumed run may change: how long it trains and how often it reports, not what it is.
RESUMABLE = frozenset({"epochs", "eval_every", "checkpoint_every", "final_importance_samples", "data", "tensorboard",
                       "device", "overlap"})


def _read_checkpoint(path: Path) -> dict:
    return read_checkpoint(path, kind="DVAE", version=_CHECKPOINT_VERSION, keys=_CHECKPOINT_KEYS)


def load_checkpoint(path, device: str = "auto") -> tuple[TrainConfig, DVAE, dict]:
    """(config, model in eval mode at its saved β on `device`, the raw checkpoint) from a checkpoint
    file or run directory, saved on any device."""
    path = Path(path)
    placement = Placement(device)
    state = _read_checkpoint(path / CHECKPOINT if path.is_dir() else path)
    config = TrainConfig.from_dict(state["config"])
    model = placement.module(build_model(config, tuple(state["image_shape"])))
    model.load_state_dict(state["model"])
    model.smoothing.beta = state["beta"]
    return config, model.eval(), state


def _training_bound(k: int, bound: str) -> str:
    """The metrics key of the training objective with log Z: the ELBO (Q-ELBO) or, for K > 1, L_{K,D}."""
    return f"train_{bound}" if k == 1 else "train_l_kd"


_NAMES = {"elbo": "ELBO", "q_elbo": "Q-ELBO"}

# The panels of curves.png (_curves.write_curves): bounds, log Z, the time spent sampling.
_CURVES = [
    ("bounds (nats)", [("train_objective", "objective (log Z left out)"), ("train_elbo", "training ELBO"),
                       ("train_q_elbo", "training Q-ELBO"), ("train_l_kd", "training L_{K,D}"),
                       ("val_elbo", "validation ELBO"), ("val_q_elbo", "validation Q-ELBO")]),
    ("log Z of the prior", [("log_z", "log Z (population annealing)")]),
    ("time", [("sampling_share", "share of a step spent waiting for samples"),
              ("overlap_share", "share of steps sampling beside the networks")]),
]


def _format_metrics(m: dict) -> str:
    """The line of an epoch, quantities named as the README names them: the training ELBO (Q-ELBO,
    L_{K,D}) is the objective less the epoch's log Z, beside the validation ELBO; without log Z (an
    epoch that is not validated, or KL warm-up) the objective alone, which leaves log Z out."""
    text = f"epoch {m['epoch']:4d}"
    bound = "q_elbo" if "val_q_elbo" in m else "elbo"
    train = _training_bound(m["K"], bound)
    if train in m:
        name = _NAMES[bound] if m["K"] == 1 else f"L_{{{m['K']},{m['D']}}}"
        text += f"  training {name} {m[train]:9.3f}"
    else:
        text += f"  objective {m['train_objective']:9.3f} (log Z left out)"
    if f"val_{bound}" in m:
        text += f"  validation {_NAMES[bound]} {m['val_' + bound]:9.3f} ± {m['val_' + bound + '_stderr']:.3f}"
        text += f"  log Z {m['log_z']:.3f} ± {m['log_z_std']:.3f}"
    text += f"  beta {m['beta']:5.2f}  lr {m['lr']:.2e}"
    return text + (f"  {m['step_seconds'] * 1e3:.0f} ms/step, sampling {100 * m['sampling_share']:.0f}%, "
                   f"overlapped {100 * m['overlap_share']:.0f}%")
