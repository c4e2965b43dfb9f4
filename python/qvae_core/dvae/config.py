"""The run configuration of `qvae-core train`: every field, its default and its command-line help.

This module does not import torch, so the CLI can list the flags cheaply; the names of priors,
smoothings, networks and samplers are checked against their tables (PRIORS, SMOOTHINGS, ENCODERS,
SAMPLERS), which need torch, when a config is made.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from .._fields import int_list, option, plain
from ..annealing import LOG_Z_POPULATION, MIN_POPULATION
from ..quantum import MAX_GAMMA

__all__ = ["TrainConfig", "QUICK"]


def _kd_list(text: str) -> list:
    """'1:8,2:4,4:2,8:1' -> [[1, 8], [2, 4], [4, 2], [8, 1]] (K:D pairs)."""
    return [[int(v) for v in pair.split(":")] for pair in text.split(",") if pair.strip()]


BETA_TRACKING = ("none", "pseudolikelihood", "appendix-c")
QPU_SCHEDULES = ("default", "pause-and-quench")


@dataclass
class TrainConfig:
    """Everything a run needs; stored in every checkpoint, so a run can be rebuilt from it."""

    data: str | None = option(None, "npz, .amat or IDX file, or a directory (default: $QVAE_DATA, else the "
                                     "packaged subset)")
    train_size: int = option(0, "use the first N training images (0: all)")
    valid_size: int = option(0, "use the first N validation images (0: all)")
    prior: str = option("rbm", "bernoulli | rbm | chimera | pegasus | zephyr | graph")
    latent: str = option("32x32", "bernoulli: N; rbm: NVxNH; chimera: M[,N[,T]]; pegasus: M; zephyr: M[,T]; "
                                   "graph: a topology .npz (qvae-core working-graph)")
    gamma: float = option(0.0, "transverse field; > 0 makes the prior a QBM trained on the Q-ELBO")
    groups: int = option(8, "groups of the hierarchical posterior (paper 000: 8)")
    encoder: str = option("mlp", "mlp | conv (28x28 images; paper 001 App. A)")
    encoder_hidden: list = option([256, 256], "hidden widths of each posterior head, e.g. 256,256", int_list)
    decoder_hidden: list = option([256], "hidden widths of the MLP decoder (paper 000: one of 250-2000); "
                                          "the conv decoder has fixed sizes", int_list)
    smoothing: str = option("spike-exp", "spike-exp | overlap-exp | power | concrete | logistic | normal")
    smoothing_uniform: float = option(0.0, "mix an overlap-exp or power smoothing with a uniform of this weight "
                                           "on [0, 1] (patent [0274]); 0: none")
    smoothing_shift: float = option(0.0, "normal smoothing: modes shifted to z + this, N(z + shift, 1/beta) "
                                         "(patent [0260]); 0: none")
    beta_start: float = option(1.0, "inverse temperature of the smoothing at the start (paper 000: 1)")
    beta_end: float = option(10.0, "... and at the end, linear in between (paper 000: 10)")
    relaxation: str = option("none", "none (the discrete objective) | gaussian-integral | mean-field: train on a "
                                     "continuous relaxation p(ζ) of the prior (patent [0250]-[0273])")
    mean_field_tolerance: float = option(1e-5, "mean-field relaxation: largest change of m at convergence")
    mean_field_iterations: int = option(200, "mean-field relaxation: sweeps allowed before it stops with an error")
    sampler: str = option("pcd", "pcd (persistent Gibbs / CT-QMC chains) | pa (population annealing) | "
                                  "qpu (a D-Wave solver; extra `dwave`)")
    negative_samples: int = option(1000, "chains (pcd) or population (pa) of the negative phase")
    sweeps: int = option(0, "sweeps per gradient (pcd) or per annealing step (pa); 0: for pcd 200 (Gibbs "
                                  "chains) or 20 (CT-QMC chains of a QBM), for pa 5")
    qpu_solver: str = option("", "qpu: solver name, or feature filters as JSON; empty: the configured "
                                  "solver (dwave-cloud-client config file or DWAVE_API_* variables)")
    beta_eff: float = option(1.0, "qpu: effective inverse temperature of the QPU samples (paper 001 App. C)")
    beta_tracking: str = option("pseudolikelihood", "qpu: none | pseudolikelihood | appendix-c")
    beta_lr: float = option(0.01, "qpu: learning rate of the appendix-c update of beta_eff (Eq. C3)")
    qpu_schedule: str = option("default", "qpu: default | pause-and-quench (paper 001 App. B)")
    chain_strength: float = option(2.0, "qpu with an rbm prior: chain strength c > 0 of its minor embedding in the "
                                         "working graph (qvae_core.embedding; Ising units)")
    epochs: int = option(20, "epochs to train to")
    batch_size: int = option(200, "images per step (paper 000: 200)")
    lr: float = option(1e-3, "Adam learning rate")
    lr_decay: float = option(1.0, "learning-rate factor per epoch (exponential decay)")
    min_lr: float = option(1e-4, "floor of the decayed learning rate")
    kl_warmup_epochs: float = option(0.0, "epochs over which the KL weight rises from 0 to 1")
    kl_balance: float = option(0.0, "epsilon of KL balancing across posterior groups while the KL weight warms up "
                                     "(patent [0169]-[0171]; K = 1 steps, discrete objective); 0: off")
    kd_schedule: list = option([[1, 1]], "(K, D) stages of L_{K,D}, e.g. 1:8,2:4,4:2,8:1 (paper 001)", _kd_list)
    kd_epochs: int = option(200, "epochs per (K, D) stage (paper 001: 200)")
    seed: int = option(0, "seed of initialisation, data order, noise and samplers")
    output: str = option("runs/dvae", "directory for checkpoint, metrics and images")
    eval_every: int = option(1, "epochs between validation ELBOs")
    checkpoint_every: int = option(1, "epochs between checkpoints")
    log_z_population: int = option(LOG_Z_POPULATION, "population of the annealing runs that estimate log Z")
    final_importance_samples: int = option(100, "K of the LL reported when training ends (1000+ for papers)")
    tensorboard: bool = option(False, "also write each epoch's metrics as TensorBoard scalars to OUTPUT/tensorboard "
                                      "(needs the tensorboard package)")
    device: str = option("auto", "torch device of the networks: auto (CUDA when available) | cpu | cuda | cuda:N")
    overlap: str = option("auto", "sample the negative phase in a background thread while the networks run: "
                                  "auto (where it makes the step faster, timed at the start and every 250 steps) "
                                  "| always | never (--no-overlap); the results are identical")

    def __post_init__(self):
        from .device import check_device_name
        from .negative_phase import check_overlap_mode
        from .networks import ENCODERS  # the tables import torch: only when a config is made
        from .priors import PRIORS
        from .relaxation import RELAXATIONS, check_relaxable
        from .samplers import SAMPLERS
        from .smoothing import SMOOTHINGS, make_smoothing

        self._normalise_types()
        tables = {"prior": PRIORS, "smoothing": SMOOTHINGS, "encoder": ENCODERS, "sampler": SAMPLERS}
        for name, table in tables.items():
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in table:
                raise ValueError(f"{name}: expected one of {sorted(table)}, got {getattr(self, name)!r}")
        for name in ("latent", "qpu_solver", "output", "beta_tracking", "qpu_schedule", "relaxation"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: expected a string, got {getattr(self, name)!r}")
        if not isinstance(self.tensorboard, bool):
            raise ValueError(f"tensorboard: expected True or False, got {self.tensorboard!r}")
        check_device_name(self.device)
        if isinstance(self.overlap, bool):  # configs written before "auto": true overlapped where it could
            self.overlap = "auto" if self.overlap else "never"
        check_overlap_mode(self.overlap)
        if self.data is not None and not isinstance(self.data, str):
            raise ValueError(f"data: expected a path or None, got {self.data!r}")
        minimum = {"train_size": 0, "valid_size": 0, "groups": 1,
                   "negative_samples": MIN_POPULATION if self.sampler == "pa" else 2, "sweeps": 0, "epochs": 1,
                   "batch_size": 2, "kd_epochs": 1, "eval_every": 1, "checkpoint_every": 1,
                   "log_z_population": MIN_POPULATION, "final_importance_samples": 1, "seed": 0,
                   "mean_field_iterations": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        if self.seed >= 2**63:
            raise ValueError(f"seed: must be below 2**63, got {self.seed}")
        for name in ("gamma", "beta_start", "beta_end", "lr", "lr_decay", "min_lr", "kl_warmup_epochs", "beta_eff",
                     "beta_lr", "chain_strength", "smoothing_uniform", "smoothing_shift",
                     "mean_field_tolerance", "kl_balance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
            setattr(self, name, float(value))
        if self.lr <= 0 or not 0 < self.lr_decay <= 1 or self.min_lr < 0 or self.kl_warmup_epochs < 0:
            raise ValueError("lr, lr_decay, min_lr, kl_warmup_epochs: need lr > 0, 0 < lr_decay <= 1, min_lr >= 0, "
                             "kl_warmup_epochs >= 0")
        if self.beta_eff <= 0 or self.beta_lr <= 0:
            raise ValueError(f"beta_eff, beta_lr: must be > 0, got {self.beta_eff}, {self.beta_lr}")
        if self.chain_strength <= 0:
            raise ValueError(f"chain_strength: must be > 0, got {self.chain_strength}")
        for name, choices in (("beta_tracking", BETA_TRACKING), ("qpu_schedule", QPU_SCHEDULES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {list(choices)}, got {getattr(self, name)!r}")
        if self.qpu_solver.startswith("{"):
            try:
                filters = json.loads(self.qpu_solver)
            except json.JSONDecodeError as exc:
                raise ValueError(f"qpu_solver: not valid JSON feature filters ({exc})") from None
            if not isinstance(filters, dict):
                raise ValueError("qpu_solver: feature filters must be a JSON object")
        kind = PRIORS[self.prior]
        kind.sizes(self.latent)  # raises ValueError naming latent
        if not 0 <= self.gamma <= MAX_GAMMA or (self.gamma > 0 and not kind.quantum):
            raise ValueError(f"gamma: must be in [0, {MAX_GAMMA:g}], and 0 for the {self.prior} prior, got {self.gamma}")
        if self.sampler == "qpu" and (self.prior == "bernoulli" or self.gamma > 0):
            raise ValueError(f"sampler: qpu samples classical graph priors (chimera, pegasus, zephyr, graph) and, "
                             f"through a minor embedding, rbm priors; not a {self.prior} prior with gamma {self.gamma:g}")
        for beta in (self.beta_start, self.beta_end):
            make_smoothing(self.smoothing, beta, self.smoothing_uniform, self.smoothing_shift)  # ValueError naming it
        if self.relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation: expected one of {sorted(RELAXATIONS)}, got {self.relaxation!r}")
        if self.relaxation != "none":
            check_relaxable(self.relaxation, self.gamma, make_smoothing(self.smoothing, self.beta_start,
                                                                        self.smoothing_uniform, self.smoothing_shift))
            if not self.mean_field_tolerance > 0:
                raise ValueError(f"mean_field_tolerance: must be > 0, got {self.mean_field_tolerance}")
        if self.kl_balance < 0 or (self.kl_balance > 0 and self.relaxation != "none"):
            raise ValueError(f"kl_balance: must be >= 0, and 0 with a relaxation, got {self.kl_balance}")
        for name in ("encoder_hidden", "decoder_hidden"):
            widths = getattr(self, name)
            if not isinstance(widths, list) or not all(isinstance(w, int) and w > 0 for w in widths):
                raise ValueError(f"{name}: expected a list of positive integers, got {widths!r}")
        stages = self.kd_schedule
        pairs = isinstance(stages, list) and all(isinstance(s, list) and len(s) == 2 for s in stages)
        if not (pairs and stages and all(isinstance(v, int) and v >= 1 for s in stages for v in s)):
            raise ValueError(f"kd_schedule: expected a non-empty list of [K, D] pairs of positive integers, "
                             f"got {stages!r}")

    def _normalise_types(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, plain(getattr(self, f.name)))

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# A short run for the README's main job: RBM 32x32 prior on the packaged subset, 400 steps
# (15 s on two idle cores, a minute or two on busy ones).
QUICK = {
    "prior": "rbm", "latent": "32x32", "groups": 4, "encoder_hidden": [200], "decoder_hidden": [200],
    "epochs": 20, "batch_size": 100, "sweeps": 50, "beta_start": 1.0, "beta_end": 6.0, "lr": 3e-3,
    "output": "runs/quick", "final_importance_samples": 100,
}

