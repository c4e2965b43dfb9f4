"""Deterministic networks of the DVAE: MLPs (paper 000) and gated (de)convolutions (paper 001 App. A).

Encoders are feature extractors x -> h that the hierarchical posterior's dense heads read;
decoders map ζ to Bernoulli pixel logits. Both come in two variants picked by name from ENCODERS
and DECODERS:

    mlp   encoder: h = x;  decoder: ζ -> [Linear, BatchNorm, ReLU] x len(hidden) -> Linear(pixels)
    conv  28x28 images only. Encoder: five gated convolutions (16,4,1) (32,3,2) (32,4,1) (64,3,2)
          (128,4,1) (channels, kernel, stride) down to 128 features; decoder: dense(128) then gated
          deconvolutions (64,4,1) (32,3,2) (32,4,1) (16,3,2) and a (1,4,1) deconvolution to the
          logits, dropout 0.2 (paper 001 Fig. 12).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["mlp", "GatedConv", "ENCODERS", "DECODERS", "CONV_IMAGE_SHAPE"]

CONV_IMAGE_SHAPE = (28, 28)
_CONV_LAYERS = [(16, 4, 1), (32, 3, 2), (32, 4, 1), (64, 3, 2), (128, 4, 1)]  # 28 -> 25, 12, 9, 4, 1
_DECONV_LAYERS = [(64, 4, 1), (32, 3, 2), (32, 4, 1), (16, 3, 2)]  # 1 -> 4, 9, 12, 25; last (1,4,1) -> 28
_DECODER_DENSE = 128
_DECODER_DROPOUT = 0.2


def mlp(num_inputs: int, hidden: Sequence[int], num_outputs: int) -> nn.Sequential:
    """[Linear, BatchNorm1d, ReLU] per hidden width, then a Linear output layer."""
    layers, width = [], num_inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)


class GatedConv(nn.Module):
    """(De)convolution to 2f channels, batch norm, split into (gate, value),
    ReLU(σ(gate) · value), dropout (paper 001 Fig. 12d)."""

    def __init__(self, in_channels, channels, kernel, stride, *, transposed=False, dropout=0.0):
        super().__init__()
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = conv(in_channels, 2 * channels, kernel, stride)
        self.norm = nn.BatchNorm2d(2 * channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        gate, value = self.norm(self.conv(x)).chunk(2, dim=1)
        return self.dropout(torch.relu(torch.sigmoid(gate) * value))


class _MLPEncoder(nn.Module):
    """The identity: the posterior's dense heads read the pixels themselves."""

    def __init__(self, num_pixels: int, image_shape):
        super().__init__()
        self.num_features = num_pixels

    def forward(self, x):  # (B, pixels) -> (B, pixels)
        return x


class _ConvEncoder(nn.Module):
    def __init__(self, num_pixels: int, image_shape):
        super().__init__()
        _check_conv_shape(image_shape)
        layers, width = [], 1
        for channels, kernel, stride in _CONV_LAYERS:
            layers.append(GatedConv(width, channels, kernel, stride))
            width = channels
        self.net = nn.Sequential(*layers)
        self.num_features = width

    def forward(self, x):  # (B, 784) -> (B, 128)
        return self.net(x.view(-1, 1, *CONV_IMAGE_SHAPE)).flatten(1)


class _MLPDecoder(nn.Module):
    def __init__(self, num_latent: int, hidden: Sequence[int], num_pixels: int, image_shape):
        super().__init__()
        self.num_pixels = num_pixels
        self.net = mlp(num_latent, hidden, num_pixels)
        self.output_bias = self.net[-1].bias

    def forward(self, zeta):  # (B, n) -> (B, pixels) logits
        return self.net(zeta)


class _ConvDecoder(nn.Module):
    def __init__(self, num_latent: int, hidden: Sequence[int], num_pixels: int, image_shape):
        super().__init__()
        _check_conv_shape(image_shape)
        self.num_pixels = num_pixels
        self.dense = nn.Sequential(
            nn.Linear(num_latent, _DECODER_DENSE), nn.BatchNorm1d(_DECODER_DENSE), nn.ReLU()
        )
        layers, width = [], _DECODER_DENSE
        for channels, kernel, stride in _DECONV_LAYERS:
            layers.append(GatedConv(width, channels, kernel, stride, transposed=True, dropout=_DECODER_DROPOUT))
            width = channels
        self.deconv = nn.Sequential(*layers)
        self.output = nn.ConvTranspose2d(width, 1, 4, 1)
        self.output_bias = None  # one bias for all pixels: no per-pixel initialisation

    def forward(self, zeta):  # (B, n) -> (B, 784) logits
        h = self.dense(zeta)[:, :, None, None]  # (B, 128, 1, 1)
        return self.output(self.deconv(h)).flatten(1)


def _check_conv_shape(image_shape) -> None:
    if tuple(image_shape) != CONV_IMAGE_SHAPE:
        raise ValueError(f"encoder: the convolutional networks need 28x28 images, got {tuple(image_shape)}")


ENCODERS = {"mlp": _MLPEncoder, "conv": _ConvEncoder}
DECODERS = {"mlp": _MLPDecoder, "conv": _ConvDecoder}
