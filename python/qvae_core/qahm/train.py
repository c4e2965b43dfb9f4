"""Wake-sleep training of the QAHM (paper 004 Algorithm 1) with checkpoints and exact resume.

One iteration: (v_d, u_d) ~ Q(u|v) Q_S(v) for a batch of training images (the paper: all 7,291);
z_k from the prior's sampler (u_k = g(z_k), Eq. 21), v_k ~ P(v|u_k) (1,000 per iteration); then one
vanilla gradient step θ ← θ + η ∇θ on G for the generator and the prior (Eq. 8–9, 15–16) and on R
for the recognition network (Eq. 17–18). `wake_sleep_losses` gives both as surrogate losses whose
autograd gradients are exactly those estimators. η is lr for lr_constant_epochs epochs, then falls
linearly to lr_end at the last epoch (the paper: 0.005 for 500 epochs, then to 0.0005 over 500).

A run writes output/checkpoint.pt (config, weights, optimizer, the sampler's state, random state,
counters), output/embedding.npz (the embedding, for embedded and gray-box priors) and one JSON line
per epoch to output/metrics.jsonl; `Trainer.resume` continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

import qvae_core as q

from .. import embedding as emb
from .._validation import binary_states
from .._curves import Curves
from .._training import (CHECKPOINT, METRICS, Progress, RunLock, append_metrics, check_epochs, check_resumable,
                         read_checkpoint, save_atomically, start_run, truncate_metrics)
from ..dvae.samplers import PersistentChains, PopulationAnnealing
from ..seeds import RunStream, derived_seed, torch_seed
from .config import QAHMConfig, topology_spec
from .data import NUM_CLASSES, NUM_PIXELS, USPS, load_usps, one_hot
from .evaluation import evaluate
from .model import HelmholtzMachine
from .priors import DensePrior, GrayBoxPrior

__all__ = ["Trainer", "wake_sleep_losses", "build_model", "build_embedding", "load_checkpoint"]

EMBEDDING = "embedding.npz"
_CHECKPOINT_VERSION = 1
_CHECKPOINT_KEYS = ("config", "epoch", "step", "model", "optimizer", "sampler", "generator")
# Config fields a resumed run may change: how long it trains and how often it reports, not what it is.
RESUMABLE = frozenset({"epochs", "eval_every", "checkpoint_every", "data"})


def wake_sleep_losses(model: HelmholtzMachine, pixels: torch.Tensor, classes: torch.Tensor, states: np.ndarray,
                      generator: torch.Generator, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(wake, sleep) surrogate losses of one wake-sleep iteration (Algorithm 1).

    pixels (B, num_pixels), classes (B, num_classes) ±1: the data batch; states: the prior sampler's
    {0,1} states. −∇wake is Eq. 15–16 for the generator and Eq. 8–9 for the prior (the positive
    phase on the recognised u^L, the negative phase on the samples); −∇sleep is Eq. 17–18 for the
    recognition network on (v_k, u_k) drawn top-down from the samples (`seed` breaks majority-vote ties).
    """
    prior = model.prior
    with torch.no_grad():
        layers = model.recognize(model.visible(pixels, classes), generator)  # wake: u_d ~ Q(u|v_d)
        top = prior.to_logical(states, seed).to(pixels.dtype)  # u_k = g(z_k)
        dreams, dream_pixels, dream_classes = model.generate(top, generator)  # sleep: v_k ~ P(v|u_k)
    negative = prior.sample_energy(torch.from_numpy(states).to(pixels.dtype))
    wake = (-model.generative_log_prob(pixels, classes, layers).mean()
            + prior.energy(layers[-1]).mean() - negative.mean())
    sleep = -model.recognition_log_prob(model.visible(dream_pixels, dream_classes), dreams).mean()
    return wake, sleep


def _topology(config: QAHMConfig):
    kind, spec = topology_spec(config.topology)
    if kind == "file":
        return q.graphs.load(spec)
    return {"chimera": q.graphs.chimera, "pegasus": q.graphs.pegasus, "zephyr": q.graphs.zephyr}[kind](*spec)


def build_embedding(config: QAHMConfig, backend=None, saved: Path | None = None):
    """The Embedding of K_n (n = hidden[-1]) for an embedded or gray-box prior, else None: the `saved`
    file of a resumed run, config.embedding, or one found (seeded) on the QPU backend's working graph
    (then made its topology) or on config.topology."""
    if config.prior == "dense":
        return None
    qpu = backend is not None and isinstance(getattr(backend, "topology", None), q.graphs.Topology)
    topology = backend.topology if qpu else None
    source = saved if saved is not None and saved.exists() else (Path(config.embedding) if config.embedding else None)
    if source is not None:
        found = emb.Embedding.load(source)
        if topology is not None:  # a QPU's working graph must hold the chains
            found = emb.Embedding(topology, found.chains, found.edges)
    else:
        n = config.hidden[-1]
        dense = q.BoltzmannMachine(np.zeros(n), emb.complete_edges(n), np.zeros(n * (n - 1) // 2))
        family = getattr(getattr(backend, "solver", None), "properties", {}).get("topology") if qpu else None
        found = emb.find_embedding(dense, topology if qpu else _topology(config), seed=derived_seed(config.seed, RunStream.EMBEDDING),
                                   family=family)
    if qpu:
        backend.topology = found.physical_topology
    return found


def build_model(config: QAHMConfig, embedding=None, pixel_mean=None) -> HelmholtzMachine:
    """The QAHM of `config`, initialised from config.seed (torch's global RNG is left as it was);
    pixel_mean (256,) in [−1, 1] sets the pixel layer's bias to atanh of the data's mean."""
    n = config.hidden[-1]
    if config.prior == "gray-box":
        prior = GrayBoxPrior(embedding, config.chain_strength, config.chain_break_method)
    else:
        prior = DensePrior(n, embedding, config.chain_strength if embedding is not None else None,
                           config.chain_break_method)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = HelmholtzMachine(NUM_PIXELS, NUM_CLASSES, config.hidden, prior)
    if pixel_mean is not None:
        with torch.no_grad():
            model.pixels.bias.copy_(torch.atanh(torch.as_tensor(pixel_mean).float().clamp(-0.999, 0.999)))
    return model


def _qpu_backend(config: QAHMConfig, seed: int):
    from ..dwave import QPUSampler

    solver = json.loads(config.qpu_solver) if config.qpu_solver.startswith("{") else (config.qpu_solver or None)
    return QPUSampler(solver, num_samples=config.negative_samples, beta_eff=config.beta_eff, seed=seed)


def build_backend(config: QAHMConfig):
    """The sampler of the prior's classical or physical model: PCD chains, annealing or a QPU."""
    seed = derived_seed(config.seed, RunStream.SAMPLER)
    if config.sampler == "qpu":
        return _qpu_backend(config, seed)
    kind = PersistentChains if config.sampler == "pcd" else PopulationAnnealing
    return kind(config.negative_samples, config.sweeps_per_sample, seed=seed)


class Trainer:
    """Trains a QAHM from a QAHMConfig; `fit` runs to config.epochs with evaluations and checkpoints.

    `sampler`, if given, replaces the one of config.sampler as the backend that samples the prior's
    model (for an embedded prior, its physical model): anything with sample(model) -> states,
    state_dict and load_state_dict, e.g. a QPUSampler (its working graph then holds the embedding).
    """

    def __init__(self, config: QAHMConfig, dataset: USPS | None = None, *, sampler=None, overwrite: bool = False,
                 _saved_embedding: Path | None = None):
        self.config = config
        self.overwrite = overwrite
        self.data = (dataset or load_usps(config.data)).subset(config.train_size, config.test_size)
        n_train = self.data.train_pixels.shape[0]
        if config.batch_size > n_train:
            raise ValueError(f"batch_size: {config.batch_size} is more than the {n_train} training images")
        backend = sampler if sampler is not None else build_backend(config)
        for method in ("sample", "state_dict", "load_state_dict"):
            if not callable(getattr(backend, method, None)):
                raise ValueError(f"sampler: lacks {method} (the negative-phase contract of qvae_core.dvae.samplers)")
        self.embedding = build_embedding(config, backend, _saved_embedding)
        self.model = build_model(config, self.embedding, self.data.train_pixels.mean(axis=0))
        if config.prior == "embedded":
            backend = emb.EmbeddedSampler(self.embedding, backend, chain_strength=config.chain_strength,
                                          chain_break_method=config.chain_break_method,
                                          seed=derived_seed(config.seed, RunStream.UNEMBEDDING))
        self.sampler = backend
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.train_pixels = torch.from_numpy(self.data.train_pixels)
        self.train_classes = torch.from_numpy(one_hot(self.data.train_labels))
        self.output = Path(config.output)
        self.run_lock: RunLock | None = None  # held from fit() or resume() on: one run per directory
        self.epoch = 0
        self.step = 0
        self._annealed = None  # (step, AnnealResult) of the last annealed_prior()

    def lr_at(self, epoch: int) -> float:
        """η at `epoch` (0-based): lr, then linear to lr_end at the last epoch."""
        c = self.config
        if epoch < c.lr_constant_epochs or c.epochs <= c.lr_constant_epochs:
            return c.lr
        progress = min((epoch - c.lr_constant_epochs + 1) / (c.epochs - c.lr_constant_epochs), 1.0)
        return c.lr + (c.lr_end - c.lr) * progress

    def _chain_break_fraction(self):
        last = getattr(self.sampler, "last", None) or getattr(self.model.prior, "last_unembedding", None)
        return None if last is None else last.break_fraction

    def train_epoch(self, progress: bool = False) -> dict:
        c, model = self.config, self.model
        model.train()
        lr = self.lr_at(self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n = self.train_pixels.shape[0]
        batch = c.batch_size or n
        steps = n // batch
        shuffle = torch.Generator().manual_seed(torch_seed(c.seed, RunStream.SHUFFLE, self.epoch))
        order = torch.randperm(n, generator=shuffle)
        bar = Progress(steps, f"epoch {self.epoch + 1}/{c.epochs}", progress)
        wake_total = sleep_total = breaks = sampling = 0.0
        start = time.perf_counter()
        for i in range(steps):
            rows = order[i * batch : (i + 1) * batch]
            tick = time.perf_counter()
            sampled = model.prior.numpy_model()  # an embedded prior's sampler unembeds: the units are the same
            states = binary_states(self.sampler.sample(sampled), "sampler.sample()", sampled.num_units)
            sampling += time.perf_counter() - tick
            if states.shape[0] == 0:
                raise ValueError("sampler.sample(): no samples (with chain_break_method discard: every sample had a "
                                 "broken chain; raise chain_strength)")
            wake, sleep = wake_sleep_losses(model, self.train_pixels[rows], self.train_classes[rows], states,
                                            self.generator, seed=derived_seed(c.seed, RunStream.WAKE_SLEEP, self.step))
            loss = wake + sleep
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged at step {self.step}: the loss is {loss.item()}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            wake_total += wake.item()
            sleep_total += sleep.item()
            broken = self._chain_break_fraction()
            breaks += 0.0 if broken is None else broken
            self.step += 1
            bar.update(i + 1, wake=wake_total / (i + 1), sleep=sleep_total / (i + 1))
        bar.close()
        seconds = time.perf_counter() - start
        self.epoch += 1
        metrics = {"epoch": self.epoch, "step": self.step, "lr": lr, "wake_loss": wake_total / steps,
                   "sleep_loss": sleep_total / steps, "seconds": seconds, "step_seconds": seconds / steps,
                   "sampling_share": sampling / seconds}
        if self._chain_break_fraction() is not None:
            metrics["chain_break_fraction"] = breaks / steps
        return metrics

    def annealed_prior(self):
        """The population-annealing run of the prior's classical model at the epoch reached (log Z and
        prior samples; one run per epoch, config.log_z_population replicas)."""
        if self._annealed is None or self._annealed[0] != self.step:
            seed = derived_seed(self.config.seed, RunStream.LOG_Z, self.epoch)
            self._annealed = (self.step, self.model.prior.anneal(population=self.config.log_z_population, seed=seed))
        return self._annealed[1]

    def evaluate(self) -> dict:
        """evaluate() on the test images at the epoch reached, with annealed_prior()'s log Z (none for
        a QPU prior)."""
        classical = self.config.sampler != "qpu"
        return evaluate(self.model, self.data.test_pixels, self.data.test_labels, classical=classical,
                        annealed=self.annealed_prior() if classical else None,
                        seed=derived_seed(self.config.seed, RunStream.EVALUATION, self.epoch))

    def fit(self, *, progress: bool = True, log=print) -> list[dict]:
        """Train to config.epochs from the current epoch; returns the metrics of the epochs run."""
        c = self.config
        self.run_lock = self.run_lock or RunLock(self.output)  # (ValueError if another process runs in it)
        if self.epoch == 0:
            start_run(self.output, self.overwrite, "Trainer.resume, qvae-core qahm train --resume")
            if self.embedding is not None:
                self.embedding.save(self.output / EMBEDDING)
        (self.output / "config.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n")
        history = []
        curves = Curves(self.output, _CURVES)
        while self.epoch < c.epochs:
            metrics = self.train_epoch(progress)
            if self.epoch % c.eval_every == 0 or self.epoch == c.epochs:
                metrics.update({f"test_{k}": v for k, v in self.evaluate().items()
                                if k in ("bound", "elbo", "accuracy", "reconstruction_mse", "log_z")})
            append_metrics(self.output, metrics)  # before the checkpoint: resume drops lines after it
            curves.update(self.output / METRICS, last=self.epoch == c.epochs)
            if self.epoch % c.checkpoint_every == 0 or self.epoch == c.epochs:
                self.save_checkpoint()
            history.append(metrics)
            log(_format_metrics(metrics))
        return history

    # --- checkpoints ---
    def state_dict(self) -> dict:
        return {"version": _CHECKPOINT_VERSION, "config": self.config.to_dict(), "epoch": self.epoch,
                "step": self.step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "sampler": self.sampler.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["generator"])
        self.epoch, self.step = state["epoch"], state["step"]

    def save_checkpoint(self) -> Path:
        """Write output/checkpoint.pt atomically (all a resumed run needs to continue exactly)."""
        return save_atomically(self.state_dict(), self.output / CHECKPOINT)

    @classmethod
    def resume(cls, output, *, dataset: USPS | None = None, sampler=None, **overrides) -> "Trainer":
        """The trainer saved in output/checkpoint.pt, writing on in `output`; `overrides` may change the
        fields of RESUMABLE. Metrics lines written after the checkpoint are dropped."""
        check_resumable(overrides, RESUMABLE, output)
        output = Path(output)
        lock = RunLock(output) if output.is_dir() else None  # (a missing run: _read_checkpoint says so)
        state = _read_checkpoint(output / CHECKPOINT)
        config = QAHMConfig.from_dict({**state["config"], **overrides, "output": str(output)})
        check_epochs(config.epochs, state["epoch"], output)
        trainer = cls(config, dataset, sampler=sampler, _saved_embedding=output / EMBEDDING)
        trainer.run_lock = lock
        trainer.load_state_dict(state)
        truncate_metrics(output, trainer.epoch)
        return trainer


def _read_checkpoint(path: Path) -> dict:
    return read_checkpoint(path, kind="QAHM", version=_CHECKPOINT_VERSION, keys=_CHECKPOINT_KEYS,
                           has=lambda state: "hidden" in state.get("config", {}))  # not a DVAE's


def load_checkpoint(path) -> tuple[QAHMConfig, HelmholtzMachine, dict]:
    """(config, model in eval mode, the raw checkpoint) from a checkpoint file or run directory; the
    embedding comes from embedding.npz beside it."""
    path = Path(path)
    file = path / CHECKPOINT if path.is_dir() else path
    state = _read_checkpoint(file)
    config = QAHMConfig.from_dict(state["config"])
    embedding = None
    if config.prior != "dense":
        saved = file.parent / EMBEDDING
        if not saved.is_file():
            raise FileNotFoundError(f"embedding: {saved} does not exist (the run's embedding)")
        embedding = emb.Embedding.load(saved)
    model = build_model(config, embedding)
    model.load_state_dict(state["model"])
    return config, model.eval(), state


# The panels of curves.png (_curves.write_curves).
_CURVES = [
    ("wake-sleep losses", [("wake_loss", "wake loss"), ("sleep_loss", "sleep loss")]),
    ("test bounds (nats)", [("test_bound", "wake-sleep bound G"), ("test_elbo", "ELBO")]),
    ("log Z of the prior", [("test_log_z", "ln Z (population annealing)")]),
    ("test accuracy, time", [("test_accuracy", "accuracy"), ("sampling_share", "share of a step spent sampling"),
                             ("chain_break_fraction", "broken chains")]),
]


def _format_metrics(m: dict) -> str:
    text = f"epoch {m['epoch']:4d}  wake {m['wake_loss']:9.3f}  sleep {m['sleep_loss']:8.3f}  lr {m['lr']:.2e}"
    if "chain_break_fraction" in m:
        text += f"  chains broken {100 * m['chain_break_fraction']:.2f}%"
    if m.get("test_bound") is not None:
        text += f"  test bound {m['test_bound']:9.3f}"
    if "test_accuracy" in m:
        text += f"  accuracy {100 * m['test_accuracy']:.1f}%  mse {m['test_reconstruction_mse']:.4f}"
    return text + f"  {m['step_seconds'] * 1e3:.0f} ms/step, sampling {100 * m['sampling_share']:.0f}%"
