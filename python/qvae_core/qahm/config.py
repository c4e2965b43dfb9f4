"""The run configuration of `qvae-core qahm train`: every field, its default and its help.

The defaults are paper 004's run (Sec. IV): hidden layers of 120 and 60 units, a fully connected
prior over the 60 embedded in a Chimera C(16) working graph (the D-Wave 2000Q's) and sampled by a
classical emulation of the annealer, vanilla wake-sleep on all 7,291 training images per iteration
with 1,000 generator samples, learning rate 0.005 for 500 epochs, then linearly to 0.0005 over 500
more. This module imports neither torch nor the samplers, so the CLI lists the flags cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from ..annealing import MIN_POPULATION
from .._fields import int_list, option, plain

__all__ = ["QAHMConfig", "QUICK", "PRIORS", "SAMPLERS"]

PRIORS = ("dense", "embedded", "gray-box")
SAMPLERS = ("pcd", "pa", "qpu")
CHAIN_BREAK_METHODS = ("majority_vote", "discard", "weighted_random")
DEFAULT_SWEEPS = {"pcd": 200, "pa": 5}


@dataclass
class QAHMConfig:
    """Everything a QAHM run needs; stored in every checkpoint."""

    data: str | None = option(None, "USPS directory (zip.train.gz, zip.test.gz), zip.train[.gz] or .npz "
                                     "(default: the packaged subset of 1,000 + 500 images)")
    train_size: int = option(0, "use the first N training images (0: all)")
    test_size: int = option(0, "use the first N test images (0: all)")
    hidden: list = option([120, 60], "widths of the hidden layers, the last one under the prior (paper: 120,60)",
                           int_list)
    prior: str = option("embedded", "dense (a BM sampled as it is) | embedded (the BM through its minor "
                                     "embedding) | gray-box (the physical model's parameters, Eq. 19)")
    sampler: str = option("pcd", "pcd (persistent block-Gibbs chains) | pa (population annealing) | qpu "
                                  "(a D-Wave solver; embedded and gray-box priors)")
    topology: str = option("chimera:16", "working graph of the embedding: chimera:M[,N[,T]], pegasus:M, zephyr:M[,T] "
                                          "or a topology .npz; with sampler qpu the solver's working graph")
    embedding: str = option("", "an embedding .npz (Embedding.save) to use instead of finding one")
    chain_strength: float = option(3.0, "chain strength c > 0: couplers inside a chain start at J = -c (Ising units)")
    chain_break_method: str = option("majority_vote", "majority_vote (Eq. 21) | discard | weighted_random")
    negative_samples: int = option(1000, "generator samples per iteration (paper: 1000): chains, population or reads")
    sweeps: int = option(0, "sweeps per iteration (pcd) or per annealing step (pa); 0: 200 for pcd, 5 for pa")
    qpu_solver: str = option("", "qpu: solver name or JSON feature filters; empty: the configured solver")
    beta_eff: float = option(1.0, "qpu: inverse temperature the programmed problem is divided by")
    epochs: int = option(1000, "epochs to train to (paper: 1000)")
    batch_size: int = option(0, "images per wake-sleep iteration (0: all training images, as the paper)")
    lr: float = option(0.005, "learning rate of the vanilla gradient steps (paper: 0.005)")
    lr_end: float = option(0.0005, "learning rate reached at the last epoch, linearly from lr_constant_epochs")
    lr_constant_epochs: int = option(500, "epochs at lr before the linear decay (paper: 500)")
    seed: int = option(0, "seed of initialisation, data order, unit draws, embedding search and samplers")
    output: str = option("runs/qahm", "directory for checkpoint, metrics and images")
    eval_every: int = option(50, "epochs between test-set evaluations (bound, accuracy, reconstruction)")
    checkpoint_every: int = option(10, "epochs between checkpoints")
    log_z_population: int = option(1000, "population of the annealing runs that estimate log Z")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            setattr(self, f.name, plain(getattr(self, f.name)))
        for name, choices in (("prior", PRIORS), ("sampler", SAMPLERS), ("chain_break_method", CHAIN_BREAK_METHODS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {list(choices)}, got {getattr(self, name)!r}")
        for name in ("topology", "embedding", "qpu_solver", "output"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: expected a string, got {getattr(self, name)!r}")
        if self.data is not None and not isinstance(self.data, str):
            raise ValueError(f"data: expected a path or None, got {self.data!r}")
        minimum = {"train_size": 0, "test_size": 0, "negative_samples": MIN_POPULATION if self.sampler == "pa" else 2,
                   "sweeps": 0, "epochs": 1, "batch_size": 0, "lr_constant_epochs": 0, "seed": 0, "eval_every": 1,
                   "checkpoint_every": 1, "log_z_population": MIN_POPULATION}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        if self.seed >= 2**63:
            raise ValueError(f"seed: must be below 2**63, got {self.seed}")
        for name in ("chain_strength", "beta_eff", "lr", "lr_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
            setattr(self, name, float(value))
        widths = self.hidden
        if not (isinstance(widths, list) and widths and all(isinstance(w, int) and w > 0 for w in widths)):
            raise ValueError(f"hidden: expected a non-empty list of positive integers, got {widths!r}")
        if self.sampler == "qpu" and self.prior == "dense":
            raise ValueError("sampler: a QPU samples the embedded or gray-box prior, not a dense one")
        if self.prior == "dense" and (self.embedding or self.chain_break_method != "majority_vote"):
            raise ValueError("embedding, chain_break_method: a dense prior is sampled without an embedding")
        if self.qpu_solver.startswith("{"):
            try:
                filters = json.loads(self.qpu_solver)
            except json.JSONDecodeError as exc:
                raise ValueError(f"qpu_solver: not valid JSON feature filters ({exc})") from None
            if not isinstance(filters, dict):
                raise ValueError("qpu_solver: feature filters must be a JSON object")
        if self.prior != "dense" and self.sampler != "qpu" and not self.embedding:
            topology_spec(self.topology)  # raises ValueError naming topology

    @property
    def sweeps_per_sample(self) -> int:
        return self.sweeps or DEFAULT_SWEEPS.get(self.sampler, 0)

    @classmethod
    def from_dict(cls, values: dict) -> "QAHMConfig":
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FAMILIES = {"chimera": (1, 2, 3), "pegasus": (1,), "zephyr": (1, 2)}


def topology_spec(text: str):
    """("file", path) or (family, [sizes]) of a topology option such as "pegasus:16"."""
    if text.endswith(".npz"):
        return "file", text
    family, _, sizes = text.partition(":")
    try:
        numbers = [int(v) for v in sizes.split(",")]
    except ValueError:
        numbers = []
    if family not in _FAMILIES or len(numbers) not in _FAMILIES[family] or min(numbers, default=0) < 1:
        raise ValueError(f"topology: expected chimera:M[,N[,T]], pegasus:M, zephyr:M[,T] or a .npz file, got {text!r}")
    return family, numbers


# A short run for a fresh machine: the packaged subset (1,000 training images), the paper's
# network and embedded prior on Chimera C(16), minibatches of 100 and a larger step.
QUICK = {
    "epochs": 30, "batch_size": 100, "lr": 0.05, "lr_end": 0.01, "lr_constant_epochs": 20, "negative_samples": 200,
    "sweeps": 20, "eval_every": 30, "checkpoint_every": 10, "output": "runs/qahm-quick",
}
