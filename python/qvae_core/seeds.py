"""Seeds of the random streams: every stream's seed comes from `derived_seed` (docs/conventions.md,
"Many processes").

A stream is named by the seed it derives from, its purpose (a member of one of the enums below) and,
for a stream that is drawn afresh, the index of that draw (an epoch, a call). Changing a value
changes every result and what a resumed checkpoint draws next: the values are fixed.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = ["derived_seed", "torch_seed", "RunStream", "SamplerStream", "EvaluationStream", "TaskStream"]


class RunStream(enum.IntEnum):
    """Streams of a training run, derived from its seed (TrainConfig.seed)."""

    SHUFFLE = 1  # order of the training images; index: the epoch
    LOG_Z = 2  # the annealing run that estimates log Z at validation; index: the epoch
    SAMPLER = 3  # the seed of the negative-phase sampler, from which its own streams derive
    EVALUATION = 4  # the posterior draws of a validation; index: the epoch
    EMBEDDING = 5  # the search for the prior's minor embedding (QAHM)
    UNEMBEDDING = 6  # the tie-breaks of the majority vote that unembeds samples (QAHM)
    WAKE_SLEEP = 7  # the draws of a wake-sleep step (QAHM); index: the step
    TEST_BINARISATION = 8  # the one binarisation of a dynamic dataset's test images (the valid ones: the seed)
    DEVICE_GENERATOR = 9  # the run's generator when a checkpoint resumes on another kind of device; index: the step
    TRAINING_NOISE = 10  # the trainer's torch generator on a rank r > 0 under torchrun (rank 0's: the run seed)


class SamplerStream(enum.IntEnum):
    """Streams of a negative-phase sampler, derived from its seed (RunStream.SAMPLER of the run).
    A population-annealing sampler starts a run per call instead: call k's seed is
    derived_seed(seed, k)."""

    CHAINS = 0  # the persistent chains (GibbsSampler or PathIntegralSampler)
    BETA_UPDATE = 1  # the annealing runs of a QPU's App. C beta_eff update
    QPU = 2  # a QPU sampler's spin-reversal transforms
    EMBEDDING = 3  # the search for the prior's minor embedding (an RBM prior on a QPU)
    UNEMBEDDING = 4  # the tie-breaks of the majority vote that unembeds samples


class EvaluationStream(enum.IntEnum):
    """Streams of an evaluation (qvae_core.dvae.evaluation), derived from its seed. The posterior
    draws are keyed by the image's index in its split, so any division of the images among
    passes, processes or resumed runs draws the same samples for each image."""

    DRAWS = 0  # the posterior draws of one image; indices: the image, the block of samples
    LOG_Z = 1  # the annealing run that estimates log Z (when not given)
    LOG_DIAG = 2  # the clamped-slice annealing of a QBM's true ELBO


class TaskStream(enum.IntEnum):
    """Streams of the tasks that qvae_core.distributed spreads over workers, derived from the seed of
    the call; index: the task (a run, a chunk of states)."""

    ANNEAL = 1  # an independent population-annealing run
    LOG_DIAG = 2  # a chunk of states of log_diag


def derived_seed(seed: int, purpose: int, *index: int, rank: int = 0) -> int:
    """The uint64 seed of stream (`seed`, `purpose`, `index`...) of process or task `rank`.

    Independent streams for distinct keys (numpy's SeedSequence hashes them). Rank 0 is the
    single-process run: its seeds do not depend on how many processes there are, and another rank
    adds its number as a last key, so each purpose must always take the same number of indices.
    """
    keys = [seed, purpose, *index] + ([rank] if rank else [])
    return int(np.random.SeedSequence(keys).generate_state(1, np.uint64)[0])


def torch_seed(seed: int, purpose: int, *index: int, rank: int = 0) -> int:
    """derived_seed(...) in the range torch.Generator.manual_seed takes (63 bits: the top bit dropped)."""
    return derived_seed(seed, purpose, *index, rank=rank) >> 1
