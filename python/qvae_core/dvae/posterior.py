"""Hierarchical approximate posterior q(z, ζ | x) = Π_g q(z_g | ζ_{<g}, x) r(ζ_g | z_g).

The latent units are split into G contiguous groups (paper 000 used 8); the Bernoulli logits of
group g come from a dense head reading the encoder features of x and the smoothed ζ of all
earlier groups (paper 000 App. C, paper 001 Eq. 20 and Fig. 7a). Sampling is ancestral and
reparameterised group by group through the smoothing's inverse CDF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import mlp
from .smoothing import Smoothed, Smoothing

__all__ = ["PosteriorSample", "HierarchicalPosterior"]


@dataclass
class PosteriorSample:
    """One draw of every latent unit, each (B, n): conditional logits l of q(z_l = 1 | ζ_{<g(l)}, x),
    the smoothed ζ, the discrete z and the stand-in `post` for z in the prior's energy."""

    logits: torch.Tensor
    zeta: torch.Tensor
    z: torch.Tensor
    post: torch.Tensor

    def log_q(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """log q(z | x) = Σ_l z_l log q_l + (1 - z_l) log(1 - q_l), (B,); z defaults to the drawn z."""
        z = self.z if z is None else z
        return (z * F.logsigmoid(self.logits) + (1 - z) * F.logsigmoid(-self.logits)).sum(1)

    def entropy(self) -> torch.Tensor:
        """Σ_l H(q_l): an unbiased estimate of H(q(z|x)) whose last step is analytic (paper 000 Eq. 27, B1), (B,)."""
        q = torch.sigmoid(self.logits)
        return -(q * F.logsigmoid(self.logits) + (1 - q) * F.logsigmoid(-self.logits)).sum(1)


class HierarchicalPosterior(nn.Module):
    """G dense heads over encoder features; head g sees [h(x), ζ_1, ..., ζ_{g-1}] (paper 000 App. C).

    `group` (buffer, (n,) long) is the group index of every unit; the prior's positive phase uses
    it to pair each unit with the right conditional (see priors.Prior.expected_energy).
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_latent: int,
        num_groups: int,
        hidden: Sequence[int],
        smoothing: Smoothing,
    ):
        super().__init__()
        if not 1 <= num_groups <= num_latent:
            raise ValueError(f"groups: must be between 1 and the {num_latent} latent units, got {num_groups}")
        self.encoder = encoder
        self.smoothing = smoothing
        self.sizes = [len(part) for part in np.array_split(np.arange(num_latent), num_groups)]
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.heads = nn.ModuleList(
            mlp(encoder.num_features + int(offset), hidden, size) for offset, size in zip(offsets, self.sizes)
        )
        self.register_buffer("group", torch.repeat_interleave(torch.arange(num_groups), torch.tensor(self.sizes)))

    @property
    def num_latent(self) -> int:
        return int(sum(self.sizes))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, repeats: int = 1,
                noise: torch.Tensor | None = None) -> PosteriorSample:
        """`repeats` draws per image, stacked as x.repeat(repeats, 1) would be; x is encoded once.
        `noise`, (2, repeats·B, n) uniforms, replaces the draws from `generator` (ρ, then u per unit)."""
        features = self.encoder(x).repeat(repeats, 1)  # (repeats·B, F)
        parts: list[Smoothed] = []
        logits = []
        start = 0
        for head, size in zip(self.heads, self.sizes):
            group_logits = head(torch.cat([features, *(p.zeta for p in parts)], dim=1))  # (B, size)
            if noise is None:
                rho, u = torch.rand((2, features.shape[0], size), generator=generator, dtype=x.dtype, device=x.device)
            else:
                rho, u = noise[:, :, start : start + size]
            start += size
            part = self.smoothing(group_logits, rho, u)
            if self.smoothing.relaxed and not self.training:
                part = Smoothed(part.z, part.z, part.z)  # evaluation at τ -> 0 (paper 001 Sec. I A)
            parts.append(part)
            logits.append(group_logits)
        return PosteriorSample(
            torch.cat(logits, 1),
            torch.cat([p.zeta for p in parts], 1),
            torch.cat([p.z for p in parts], 1),
            torch.cat([p.post for p in parts], 1),
        )
