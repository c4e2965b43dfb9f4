"""Where the networks run: the torch device of a run and everything that crosses to it.

`resolve_device` turns the `device` option (auto | cpu | cuda | cuda:N) into a torch.device; `Placement`
is the one object the trainer, evaluation and sampling go through to put things there: the modules
(networks and the prior's parameters), data batches (pinned host memory, non-blocking copies), the
run's random generator (one per device, seeded from the run seed) and the negative-phase samples.
The C++ samplers stay on the CPU and read the prior's parameters from one host copy per step
(Prior.numpy_model).

Bit-exactness: on one device a run, and a run resumed from its checkpoint there, are exactly
reproducible. A CPU and a CUDA generator draw different streams, and CUDA kernels round differently,
so the same seed on another device gives a different (equally valid) run; a checkpoint moved to
another device loads (map_location) and its generator restarts from (seed, step) there.
"""

from __future__ import annotations

import re

import torch

__all__ = ["DEVICES", "check_device_name", "resolve_device", "Placement"]

DEVICES = "auto | cpu | cuda | cuda:N"
_NAME = re.compile(r"(auto|cpu|cuda)(:(\d+))?")


def check_device_name(name) -> re.Match:
    """The parts of a device name of the form DEVICES; ValueError naming `device` otherwise (whether
    this machine has the device is resolve_device's question: a config names it anywhere)."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None or (match[1] != "cuda" and match[2]):
        raise ValueError(f"device: expected {DEVICES}, got {name!r}")
    return match


def resolve_device(name: str) -> torch.device:
    """The torch.device of `name` (DEVICES; auto: CUDA when available, else CPU); ValueError naming
    `device` for any other name or a CUDA device this machine does not have."""
    match = check_device_name(name)
    if match[1] == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if match[1] == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(match[3] or 0)
    if index >= count:
        have = f"has {count} CUDA device{'s' if count != 1 else ''}" if count else "has no CUDA device"
        raise ValueError(f"device: {name!r} requested, but this machine {have} (use --device cpu or auto)")
    return torch.device("cuda", index)


class Placement:
    """The device of a run and the crossings to it (module docstring)."""

    def __init__(self, name: str = "auto"):
        self.device = resolve_device(name)
        self.cuda = self.device.type == "cuda"

    def __repr__(self) -> str:
        return f"Placement({str(self.device)!r})"

    def module(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` (networks and prior parameters) moved to the device, in place."""
        return module.to(self.device)

    def generator(self, seed: int) -> torch.Generator:
        """The run's generator on the device, seeded with `seed` (signed 64-bit)."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def host(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` in pinned host memory when the device is CUDA (so the copy to it can overlap)."""
        return tensor.pin_memory() if self.cuda and not tensor.is_pinned() else tensor

    def batch(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host tensor on the device: a non-blocking copy from pinned memory on CUDA, itself on the CPU."""
        return self.host(tensor).to(self.device, non_blocking=True)

    def states(self, states, dtype: torch.dtype) -> torch.Tensor:
        """(N, n) uint8 sampler states as a `dtype` tensor on the device, copied over once."""
        return self.batch(torch.from_numpy(states)).to(dtype)

    def load_generator_state(self, generator: torch.Generator, state: torch.Tensor, saved_on: str,
                             seed: int) -> bool:
        """Restore a generator state saved on a device of type `saved_on` if that is this device's
        type (the run then continues exactly, returns True); else reseed the generator with `seed`."""
        if saved_on == self.device.type:
            generator.set_state(state.cpu())
            return True
        generator.manual_seed(seed)
        return False
