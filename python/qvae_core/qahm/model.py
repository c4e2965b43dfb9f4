"""The quantum-assisted Helmholtz machine (paper 004 Sec. III–IV, Fig. 2) in PyTorch.

Units are ±1 as in the paper (docs/conventions.md, "Helmholtz-machine units"). The visible layer v is
256 continuous pixels in [−1, 1] and 10 one-hot ±1 class units; hidden layers u^1 … u^L are
stochastic binary (paper: 120 and 60), u^L being the deepest, whose prior P(u^L) is a Boltzmann
machine (qahm.priors). Every stochastic layer is a sigmoid layer (Eq. 12–14):

    π(u_i | u'; C, c) = [1 + exp(−2 u_i (Σ_j C_ij u'_j + c_i))]^{−1},   E[u_i | u'] = tanh(C u' + c)_i.

Recognition Q(u|v) = Π_l Q_l(u^{l+1} | u^l) (Eq. 11, 13), bottom-up from v; generation
P(v|u^L) = P_0(v | u^1) Π_l P_l(u^l | u^{l+1}) (Eq. 10, 12), top-down. In P_0 the pixels are the
deterministic tanh layer of Sec. IV, tanh(A u^1 + a): log P_0 of continuous pixels is the ±1
sigmoid log-likelihood with the pixel value as its target, Σ_i [(1+v_i)/2 log π(+1) + (1−v_i)/2 log π(−1)],
whose gradient is Eq. 15–16 with v_i continuous (v_i − tanh(·)_i). With binary_pixels the pixels are
a stochastic ±1 sigmoid layer instead (drawn, not averaged, in the sleep phase). The class units are one-hot, so P_0 draws them from a softmax over the 10 classes
(the categorical form of a sigmoid layer, the same delta-rule gradient); a model may have none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HelmholtzMachine", "sample_layer", "layer_log_prob"]


def sample_layer(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """±1 units with P(u_i = +1) = σ(2 x_i) (Eq. 14), x the layer's input field."""
    return torch.where(torch.rand(x.shape, generator=generator) < torch.sigmoid(2 * x), 1.0, -1.0).to(x.dtype)


def layer_log_prob(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Σ_i log π(u_i | ·) = −Σ_i softplus(−2 u_i x_i) per row (Eq. 14); u may be continuous in [−1, 1]
    (its log-likelihood with u as target, linear in u)."""
    return -(((1 + u) / 2) * F.softplus(-2 * x) + ((1 - u) / 2) * F.softplus(2 * x)).sum(-1)


class HelmholtzMachine(nn.Module):
    """Recognition and generator networks around a prior over the deepest layer (module docstring).

    hidden: widths of u^1 … u^L (paper 004: [120, 60]); prior: a qahm.priors prior over hidden[-1]
    units; binary_pixels: ±1 sigmoid pixels instead of the deterministic tanh layer.
    recognition[l] holds (B^l, b^l) of Q(u^{l+1}|u^l) with u^0 = v; generation[l-1] holds (A^l, a^l)
    of P(u^l | u^{l+1}) for l >= 1; pixels and classes hold P_0(v | u^1).
    """

    def __init__(self, num_pixels: int, num_classes: int, hidden, prior, *, binary_pixels: bool = False):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1 or num_pixels < 1 or num_classes < 0:
            raise ValueError(f"hidden: expected at least one layer of positive widths, got {hidden}")
        if prior.num_units != hidden[-1]:
            raise ValueError(f"prior: has {prior.num_units} units, the deepest layer {hidden[-1]}")
        self.num_pixels, self.num_classes, self.hidden = num_pixels, num_classes, hidden
        self.binary_pixels = bool(binary_pixels)
        widths = [num_pixels + num_classes, *hidden]
        self.recognition = nn.ModuleList(nn.Linear(widths[l], widths[l + 1]) for l in range(len(hidden)))
        self.generation = nn.ModuleList(nn.Linear(widths[l + 1], widths[l]) for l in range(1, len(hidden)))
        self.pixels = nn.Linear(hidden[0], num_pixels)
        self.classes = nn.Linear(hidden[0], num_classes) if num_classes else None
        self.prior = prior

    # ---- recognition Q(u|v) ----------------------------------------------------------------------

    def recognize(self, v: torch.Tensor, generator: torch.Generator) -> list:
        """[u^1, …, u^L] drawn bottom-up from Q(u|v); v = [pixels, classes] (B, num_pixels + num_classes)."""
        layers, below = [], v
        for layer in self.recognition:
            below = sample_layer(layer(below), generator)
            layers.append(below)
        return layers

    def recognition_log_prob(self, v: torch.Tensor, layers: list) -> torch.Tensor:
        """log Q(u|v) = Σ_l log Q_l(u^{l+1}|u^l) per row (Eq. 11, 13)."""
        below, total = v, 0.0
        for layer, u in zip(self.recognition, layers):
            total = total + layer_log_prob(u, layer(below))
            below = u
        return total

    # ---- generation P(v|u) -----------------------------------------------------------------------

    def generate(self, top: torch.Tensor, generator: torch.Generator):
        """Top-down from u^L (B, hidden[-1]) ±1: ([u^1, …, u^L], pixels tanh(A u^1 + a) (or drawn ±1
        with binary_pixels), one-hot ±1 classes drawn from the softmax, or an empty (B, 0) tensor
        without class units)."""
        layers = [top]
        for layer in reversed(self.generation):
            layers.insert(0, sample_layer(layer(layers[0]), generator))
        field = self.pixels(layers[0])
        pixels = sample_layer(field, generator) if self.binary_pixels else torch.tanh(field)
        if self.classes is None:
            return layers, pixels, pixels.new_zeros((pixels.shape[0], 0))
        drawn = torch.multinomial(self.class_probabilities(layers[0]), 1, generator=generator).squeeze(1)
        return layers, pixels, 2 * F.one_hot(drawn, self.num_classes).to(pixels.dtype) - 1

    def class_probabilities(self, u1: torch.Tensor) -> torch.Tensor:
        """P(class | u^1), (B, num_classes)."""
        return torch.softmax(self.classes(u1), dim=-1)

    def generative_log_prob(self, pixels: torch.Tensor, classes: torch.Tensor, layers: list) -> torch.Tensor:
        """log P(v|u^1) + Σ_{l>=1} log P(u^l|u^{l+1}) per row (Eq. 10, 12; the prior is apart)."""
        total = layer_log_prob(pixels, self.pixels(layers[0]))
        if self.classes is not None:
            total = total + (F.log_softmax(self.classes(layers[0]), dim=-1) * (classes + 1) / 2).sum(-1)
        for layer, u, above in zip(self.generation, layers[:-1], layers[1:]):
            total = total + layer_log_prob(u, layer(above))
        return total

    def visible(self, pixels: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        """v = [pixels, classes]; classes None means unknown: zeros, halfway between −1 and +1."""
        if classes is None:
            classes = pixels.new_zeros((pixels.shape[0], self.num_classes))
        return torch.cat([pixels, classes], dim=1)
